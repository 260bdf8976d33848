#!/usr/bin/env bash
# Issue 4 ablation: the mel recipe plus SpecAugment (2 frequency masks up to 8 bands, 2 time masks
# up to 20 frames), everything else unchanged, EmoBox 6 folds. About 15 minutes on 2 cores.
# Compare with benchmarks/results/resnet18-mel-emobox.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmarks/ablation.sh resnet18-mel-specaug-emobox configs/resnet18-mel.yaml \
  "augment.spec_augment={freq_masks: 2, freq_width: 8, time_masks: 2, time_width: 20}"
