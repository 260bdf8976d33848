"""The issue-4 ablation table: every configuration's validation score (what selection may look
at) beside its test score (read once), from the JSON files in benchmarks/results/.

    python benchmarks/ablation_table.py > benchmarks/results/ablations.md

Validation = mean over the 6 folds of the selected epoch's UA on that fold's 4 validation
actors (drawn from its training actors); for ensembles, the ensemble's UA on the same actors.
Fold rows written before the validation score was stored are completed from the run folders
(runs/bench/<name>/<fold>/best/config.json) when present.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: (JSON file, run folder, what changed) in table order
ROWS = [
    ("ablations/egemaps-svm.json", None, "classical anchor: eGeMAPS (openSMILE) + RBF SVM"),
    ("resnet18-mel-emobox.json", "resnet18-mel-emobox", "mel recipe (seed)"),
    ("resnet18-mfcc-emobox.json", "resnet18-mfcc-emobox", "MFCC recipe (seed)"),
    ("resnet18-spectrogram-emobox.json", "resnet18-spectrogram-emobox", "spectrogram recipe (seed)"),
    ("ablations/mel-deltas.json", "mel-deltas", "mel + deltas and delta-deltas as channels"),
    ("ablations/resnet18-mel-specaug-emobox.json", "resnet18-mel-specaug-emobox", "mel + SpecAugment"),
    ("ablations/mfcc-specaug.json", "mfcc-specaug", "MFCC + SpecAugment"),
    ("ablations/mfcc-mixup.json", "mfcc-mixup", "MFCC + mixup (alpha 0.4)"),
    ("ablations/mfcc-song.json", "mfcc-song", "MFCC + RAVDESS song as extra training data"),
    ("ablations/ens-mel-mfcc.json", None, "ensemble: mel + MFCC"),
    ("ablations/ens-mel-mfcc-spec.json", None, "ensemble: mel + MFCC + spectrogram"),
    ("ablations/ens-meldeltas-mfcc.json", None, "ensemble: mel+deltas + MFCC"),
    ("ablations/ens-meldeltas-mfccspecaug-spec.json", None, "ensemble: mel+deltas + MFCC+SpecAugment + spectrogram"),
    ("ablations/ens-meldeltas-mfcc-spec.json", None, "**ensemble: mel+deltas + MFCC + spectrogram** (best on validation)"),
]


def validation_ua(res: dict, run: str | None) -> float | None:
    if "val_ua" in res:  # ensembles store it directly
        return res["val_ua"]
    if all("selected_val_ua" in f for f in res["folds"]):
        return float(np.mean([f["selected_val_ua"] for f in res["folds"]]))
    values = []
    for fold in res["folds"]:
        v = fold.get("selected_val_ua")
        if v is None and run is not None:
            cfg = ROOT / "runs" / "bench" / run / fold["fold"] / "best" / "config.json"
            if cfg.is_file():
                v = json.loads(cfg.read_text()).get("validation", {}).get("val_ua")
        if v is None:
            return None
        values.append(v)
    return float(np.mean(values))


def main() -> int:
    lines = ["| configuration | validation UA % (selection) | test WA % | test UA % | per-fold test WA | source |",
             "|---|---|---|---|---|---|"]
    for file, run, what in ROWS:
        path = RESULTS / file
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        val = validation_ua(res, run)
        folds = " ".join(f"{100 * f['wa']:.1f}" for f in res["folds"])
        lines.append(f"| {what} | {'—' if val is None else f'{100 * val:.1f}'} | {100 * res['wa']:.1f} ± "
                     f"{100 * res['wa_std']:.1f} | {100 * res['ua']:.1f} ± {100 * res['ua_std']:.1f} | {folds} "
                     f"| `benchmarks/results/{file}` |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
