#!/usr/bin/env bash
# Issue 4's best configuration (chosen on validation actors, see benchmarks/results/ablations.md):
# an ensemble of three ResNet18s — mel with deltas, MFCC, linear spectrogram — averaging their
# probabilities at one temperature fitted on the validation data. Seed 0.
#   bash benchmarks/best.sh          EmoBox 6 actor-disjoint folds, about 50 minutes on 2 cores
#                                    → benchmarks/results/ablations/ens-meldeltas-mfcc-spec.json
#   bash benchmarks/best.sh random   the seed's random 80/20 file split, about 8 minutes
#                                    → benchmarks/results/ablations/ens-meldeltas-mfcc-spec-random.json
set -euo pipefail
cd "$(dirname "$0")/.."
protocol=${1:-emobox}
if [ "$protocol" = emobox ]; then
  [ -d runs/bench/mel-deltas ] || \
    bash benchmarks/ablation.sh mel-deltas configs/resnet18-mel.yaml "preprocessing.features.deltas=true"
  for kind in mfcc spectrogram; do
    [ -d "runs/bench/resnet18-$kind-emobox" ] || bash benchmarks/seed_recipe.sh emobox "$kind"
  done
  python benchmarks/ensemble.py ens-meldeltas-mfcc-spec runs/bench/mel-deltas \
    runs/bench/resnet18-mfcc-emobox runs/bench/resnet18-spectrogram-emobox
else
  if [ ! -d runs/bench/mel-deltas-random ]; then
    emovox evaluate --config configs/resnet18-mel.yaml --set preprocessing.features.deltas=true \
      --protocol random --out runs/bench/mel-deltas-random
    cp runs/bench/mel-deltas-random/results.json benchmarks/results/ablations/mel-deltas-random.json
  fi
  for kind in mfcc spectrogram; do
    [ -d "runs/bench/resnet18-$kind-random" ] || bash benchmarks/seed_recipe.sh random "$kind"
  done
  python benchmarks/ensemble.py ens-meldeltas-mfcc-spec-random --protocol random runs/bench/mel-deltas-random \
    runs/bench/resnet18-mfcc-random runs/bench/resnet18-spectrogram-random
fi
