#!/usr/bin/env bash
# Issue 13: the prosody functionals recipe (configs/functionals-prosody.yaml: log-mel + MFCC + pitch
# statistics, class-balanced logistic regression) and its ablations, seeds 0-2.
#   cross-corpus RAVDESS speech → SAVEE (development): benchmarks/results/cross/NAME[-seedN].json
#   RAVDESS EmoBox 6 folds, per clip and speaker-adaptive: benchmarks/results/functionals-*-emobox.json
#   robustness (RAVDESS test folds, SAVEE), per clip and speaker-adaptive: benchmarks/results/robustness/
# A few minutes on 2 cores (the fits take seconds; feature extraction and the degradations dominate).
set -euo pipefail
cd "$(dirname "$0")/.."
for s in 0 1 2; do
  sfx=$([ "$s" = 0 ] && echo "" || echo "-seed$s")
  for row in "functionals-prosody configs/functionals-prosody.yaml" \
             "functionals-prosody-unbalanced configs/functionals-prosody.yaml training.balance=none" \
             "functionals-mel-pitch configs/functionals-prosody.yaml preprocessing.features.append_mfcc=false training.balance=none" \
             "functionals-mfcc-pitch configs/functionals-mfcc.yaml preprocessing.features.pitch=true"; do
    set -- $row
    name=$1 config=$2
    shift 2
    rm -rf "runs/bench/cross/$name$sfx"
    python benchmarks/cross_corpus.py "$name$sfx" "$config" seed="$s" "$@"
  done
done
for name in functionals-prosody functionals-mfcc; do
  rm -rf "runs/bench/$name-emobox"
  emovox evaluate --config "configs/$name.yaml" --protocol emobox --out "runs/bench/$name-emobox"
  cp "runs/bench/$name-emobox/results.json" "benchmarks/results/$name-emobox.json"
done
python benchmarks/robustness.py functionals-prosody --folds runs/bench/functionals-prosody-emobox \
  --savee runs/bench/cross/functionals-prosody/train/best
python benchmarks/robustness.py functionals-prosody-speaker --speaker-adaptive --folds runs/bench/functionals-prosody-emobox \
  --savee runs/bench/cross/functionals-prosody/train/best
