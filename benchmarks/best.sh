#!/usr/bin/env bash
# Issue 4's best configuration (chosen on validation actors, see benchmarks/results/ablations.md):
# an ensemble of three ResNet18s — mel with deltas, MFCC, linear spectrogram — averaging their
# probabilities at one temperature fitted on validation actors. EmoBox 6 actor-disjoint folds,
# seed 0. About 50 minutes on 2 cores (three 6-fold evaluations, then inference only).
# Result: benchmarks/results/ablations/ens-meldeltas-mfcc-spec.json
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f benchmarks/results/ablations/mel-deltas.json ] && [ -d runs/bench/mel-deltas ] || \
  bash benchmarks/ablation.sh mel-deltas configs/resnet18-mel.yaml "preprocessing.features.deltas=true"
for kind in mfcc spectrogram; do
  [ -d "runs/bench/resnet18-$kind-emobox" ] || bash benchmarks/seed_recipe.sh emobox "$kind"
done
python benchmarks/ensemble.py ens-meldeltas-mfcc-spec runs/bench/mel-deltas \
  runs/bench/resnet18-mfcc-emobox runs/bench/resnet18-spectrogram-emobox
