"""Calibrate evaluation runs made before training calibrated its models: for every fold, fit
the temperature of ``best/`` on that fold's validation actors (exactly what the trainer now does
at the end of a run), store it in ``best/config.json``, and add the test ECE before/after to the
fold's ``test.json`` and the run's ``results.json``. Accuracy figures are not touched.

    python benchmarks/calibrate_runs.py runs/bench/resnet18-mel-emobox [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from emovox.calibration import held_out_calibration
from emovox.config import load_config
from emovox.models.folder import load_bundle, save_bundle
from emovox.pipeline import ClipClassifier, window_logits
from emovox.splits import make_folds
from emovox.training.data import load_dataset
from emovox.training.evaluate import summarize
from emovox.training.trainer import calibrate_on


def calibrate_run(run: Path) -> None:
    cfg = load_config(run / "config.yaml")
    data = load_dataset(cfg, progress=False)
    folds = make_folds("emobox", data.utterances, n_val_speakers=cfg.training.val_speakers,
                       seed=cfg.seed, test_corpora=cfg.data.test_corpora)
    for fold in folds:
        best, done = run / fold.name / "best", run / fold.name / "test.json"
        if not best.is_dir() or not done.is_file():
            continue
        bundle = load_bundle(best)
        if "calibration" not in bundle.extra:
            bundle.extra["calibration"] = calibrate_on(bundle, data.subset(fold.val))
            save_bundle(bundle, best)
        t = bundle.extra["calibration"]["temperature"]
        test = data.subset(fold.test)
        logits, weights, owner = window_logits(ClipClassifier(bundle.model, bundle.pipeline), test.images, test.bounds)
        row = json.loads(done.read_text())
        row["calibration"] = held_out_calibration(logits, weights, owner, test.labels, t)
        done.write_text(json.dumps(row, indent=2) + "\n")
        print(f"{run.name} {fold.name}: T {t:.3f}, test ECE {row['calibration']['test_ece_before']:.3f} -> "
              f"{row['calibration']['test_ece_after']:.3f}")
    results = json.loads((run / "results.json").read_text())
    rows = [json.loads((run / f["fold"] / "test.json").read_text()) for f in results["folds"]]
    total = np.sum([r["confusion"] for r in rows], axis=0)
    (run / "results.json").write_text(json.dumps(summarize(cfg, results["protocol"], rows, total), indent=2) + "\n")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        calibrate_run(Path(arg))
