#!/usr/bin/env bash
# The seed recipe's figures: each feature type under the honest protocol (EmoBox 6 actor-disjoint
# folds) and the seed's own protocol (random 80/20 files). About 15 min per 6-fold run and 3 min
# per random split on 2 CPU cores. Results: benchmarks/results/resnet18-<feature>-<protocol>.json
# Usage: bash benchmarks/seed_recipe.sh [emobox|random] [feature ...]
#        (default: both protocols; mel spectrogram mfcc)
set -euo pipefail
cd "$(dirname "$0")/.."
protocols=${1:-"emobox random"}
shift || true
kinds=${*:-"mel spectrogram mfcc"}
for protocol in $protocols; do
  for kind in $kinds; do
    out="runs/bench/resnet18-$kind-$protocol"
    emovox evaluate --config "configs/resnet18-$kind.yaml" --protocol "$protocol" --out "$out"
    cp "$out/results.json" "benchmarks/results/resnet18-$kind-$protocol.json"
  done
done
python benchmarks/table.py > benchmarks/results/table.md
