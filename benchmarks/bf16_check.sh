#!/usr/bin/env bash
# Does bf16 autocast (the configs' default on CPUs with native bf16) cost accuracy? The mel recipe
# in fp32 on EmoBox folds 1 and 2, to set beside the same folds of the bf16 run
# (benchmarks/results/resnet18-mel-emobox.json). About 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/bench/resnet18-mel-emobox-fp32
emovox evaluate --config configs/resnet18-mel.yaml --set training.bf16=false --folds 1,2 --out "$out"
mkdir -p benchmarks/results/ablations
cp "$out/results.json" benchmarks/results/ablations/resnet18-mel-emobox-fp32-folds-1-2.json
