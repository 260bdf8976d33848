#!/usr/bin/env bash
# Issue 14, goal 3: the bundled ensemble's three ResNet18s distilled into one (mel + deltas,
# configs/resnet18-distilled.yaml), EmoBox 6 actor-disjoint folds, seed 0. Each fold's student
# learns from that fold's three teachers (trained on the same 16 actors, same validation actors),
# so no teacher heard a test or validation actor of the fold.
#   bash benchmarks/distill.sh [NAME [override ...]]
#     teachers: runs/bench/{mel-deltas,resnet18-mfcc-emobox,resnet18-spectrogram-emobox}, made by
#     `bash benchmarks/best.sh` when missing (about 40 min on a 2-core Zen 4 with native bf16)
#     student: about 15 min → benchmarks/results/ablations/NAME.json (default NAME: distilled)
#   e.g. bash benchmarks/distill.sh distilled-w09 training.distill.weight=0.9
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-distilled}
shift || true
for run in mel-deltas resnet18-mfcc-emobox resnet18-spectrogram-emobox; do
  [ -f "runs/bench/$run/results.json" ] || { bash benchmarks/best.sh; break; }
done
sets=()
for s in "$@"; do sets+=(--set "$s"); done
emovox evaluate --config configs/resnet18-distilled.yaml --protocol emobox --out "runs/bench/$name" "${sets[@]}"
mkdir -p benchmarks/results/ablations
cp "runs/bench/$name/results.json" "benchmarks/results/ablations/$name.json"
