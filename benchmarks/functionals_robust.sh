#!/usr/bin/env bash
# Issue 13: the prosody functionals recipe fitted with two augmented copies of each training clip
# (configs/functionals-prosody-robust.yaml), seeds 1-2 (seed 0: functionals-prosody-copies2, made by
# `python benchmarks/cross_corpus.py functionals-prosody-copies2 configs/functionals-prosody.yaml
# training.copies=2 augment.wave=...`, the same settings; its JSON holds the command).
#   cross-corpus RAVDESS speech → SAVEE (development): benchmarks/results/cross/functionals-prosody-copies2-seedN.json
# Usage: bash benchmarks/functionals_robust.sh [SEED ...]   (default: 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2)
for seed in "${seeds[@]}"; do
  rm -rf "runs/bench/cross/functionals-prosody-copies2-seed$seed"
  python benchmarks/cross_corpus.py "functionals-prosody-copies2-seed$seed" configs/functionals-prosody-robust.yaml seed="$seed"
done
