"""Issue 4 ablation: an ensemble of finished EmoBox runs (e.g. mel + MFCC), no new training.

For every fold, each run's selected model (``<run>/<fold>/best``, chosen on that fold's
validation actors) predicts the fold's test clips; the ensemble averages their probabilities.
The members are fixed before looking at test results (the rule: test folds are read once per
reported configuration).

Usage: python benchmarks/ensemble.py NAME RUN_DIR RUN_DIR [...]
  e.g. python benchmarks/ensemble.py ens-mel-mfcc runs/bench/resnet18-mel-emobox runs/bench/resnet18-mfcc-emobox
Result: benchmarks/results/ablations/NAME.json (per-fold WA/UA, members, machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from emovox.calibration import expected_calibration_error
from emovox.inference.engine import predict_clips
from emovox.labels import EMOTIONS
from emovox.models.folder import load_bundle
from emovox.pipeline import ClipClassifier
from emovox.splits import make_folds
from emovox.training.evaluate import load_dataset, machine
from emovox.training.metrics import mean_std, scores

ROOT = Path(__file__).resolve().parents[1]


def member_probabilities(run: Path, protocol: str = "emobox", split: str = "test",
                         calibrated: bool = True) -> dict[str, dict]:
    """fold name → {utterance key: (probabilities, label)} on one fold split (``test`` or ``val``)
    for one finished run (with each model's temperature, or at T = 1)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = load_dataset(cfg, progress=False)
    folds = make_folds(protocol, data.utterances, n_val_speakers=cfg["training"]["val_speakers"],
                       seed=cfg["seed"], test_corpora=cfg["data"]["test_corpora"])
    out = {}
    for fold in folds:
        best = run / fold.name / "best"
        if not fold.test or not best.is_dir():
            continue
        bundle = load_bundle(best)
        test = data.subset(getattr(fold, split))
        clf = ClipClassifier.from_bundle(bundle) if calibrated else ClipClassifier(bundle.model, bundle.pipeline)
        probs = predict_clips(clf, test.images, test.bounds)
        out[fold.name] = {u.key: (p, EMOTIONS.index(u.emotion)) for u, p in zip(test.utterances, probs)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    members = [member_probabilities(r) for r in args.runs]
    val_members = [member_probabilities(r, split="val") for r in args.runs]
    raw_members = [member_probabilities(r, calibrated=False) for r in args.runs]
    folds = sorted(set.intersection(*(set(m) for m in members)))
    if not folds:
        print("no fold is finished in every run", file=sys.stderr)
        return 1
    rows = []
    for name in folds:
        vkeys = sorted(val_members[0][name])
        vprobs = np.mean([[m[name][k][0] for k in vkeys] for m in val_members], axis=0)
        vlabels = np.array([val_members[0][name][k][1] for k in vkeys])
        val = scores(vlabels, vprobs.argmax(1), len(EMOTIONS))
        keys = sorted(members[0][name])
        if any(sorted(m[name]) != keys for m in members):
            raise ValueError(f"{name}: the runs test different clips; ensemble runs of the same protocol")
        probs = np.mean([[m[name][k][0] for k in keys] for m in members], axis=0)
        labels = np.array([members[0][name][k][1] for k in keys])
        s = scores(labels, probs.argmax(1), len(EMOTIONS))
        single = [scores(labels, np.array([m[name][k][0] for k in keys]).argmax(1), len(EMOTIONS))["wa"]
                  for m in members]
        raw = np.mean([[m[name][k][0] for k in keys] for m in raw_members], axis=0)
        rows.append({"fold": name, **s, "n_test": len(keys), "member_wa": single,
                     "val_wa": val["wa"], "val_ua": val["ua"],
                     "test_ece_before": expected_calibration_error(raw, labels),
                     "test_ece_after": expected_calibration_error(probs, labels)})
        print(f"{name}: WA {s['wa']:.3f}  UA {s['ua']:.3f}   members WA {' '.join(f'{w:.3f}' for w in single)}")
    res = {"protocol": "emobox", "protocol_note": "actor-disjoint: EmoBox 6 folds; each member selected on "
           "validation actors from the training actors", "ensemble_of": [str(r) for r in args.runs],
           "folds": rows, "machine": machine(), "seconds": time.perf_counter() - t0}
    for key in ("wa", "ua", "f1", "val_wa", "val_ua", "test_ece_before", "test_ece_after"):
        res[key], res[f"{key}_std"] = mean_std([r[key] for r in rows])
    print(f"validation actors (selection): WA {100 * res['val_wa']:.1f}  UA {100 * res['val_ua']:.1f}")
    print(f"ensemble: WA {100 * res['wa']:.1f} ± {100 * res['wa_std']:.1f}  UA {100 * res['ua']:.1f} ± {100 * res['ua_std']:.1f}")
    out = ROOT / "benchmarks" / "results" / "ablations" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
