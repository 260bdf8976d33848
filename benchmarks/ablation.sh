#!/usr/bin/env bash
# One issue-4 ablation: a recipe plus --set overrides, EmoBox 6 actor-disjoint folds, seed 0.
# About 15 minutes on 2 cores (speech only; about 25 with song as extra training data).
# Usage: bash benchmarks/ablation.sh NAME CONFIG [override ...]
#   e.g. bash benchmarks/ablation.sh mfcc-song configs/resnet18-mfcc.yaml data.corpus=ravdess-all \
#          "data.test_corpora=[ravdess-speech]"
# Result: benchmarks/results/ablations/NAME.json (per-fold WA/UA, config, machine); the run folder
# runs/bench/NAME keeps every fold's model, curves and confusion matrices.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 config=$2
shift 2
sets=()
for s in "$@"; do sets+=(--set "$s"); done
out="runs/bench/$name"
emovox evaluate --config "$config" --protocol emobox --out "$out" "${sets[@]}"
mkdir -p benchmarks/results/ablations
cp "$out/results.json" "benchmarks/results/ablations/$name.json"
