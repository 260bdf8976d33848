"""Accuracy change of int8 quantisation, measured on the EmoBox folds (and on SAVEE).

    python benchmarks/quantize_folds.py [--static] [--name NAME] [RUN ...] [--savee MODEL]
        → benchmarks/results/NAME.json (default: quantize, or quantize-static with --static)

RUN: finished `emovox evaluate --protocol emobox` folders (default runs/bench/resnet18-mel-emobox).
For each fold, the selected model (with several RUNs: their fold models as one ensemble, the
bundled model's shape) is exported to ONNX in float32 and in int8, both predict the fold's test
actors (onnxruntime, the graph a user runs; every clip answered, as `evaluate` does), and WA / UA of
each and the change are reported. ``--static``: static quantisation calibrated on 64 clips spread
over the fold's *training* actors (never its validation or test actors); otherwise dynamic.
``--savee MODEL``: the same comparison for one model folder (e.g. the bundled one, calibrated on
RAVDESS training clips) on SAVEE, all 480 clips (its own answer) and EmoBox's 4-emotion list (argmax
over those 4) — a cross-corpus development figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from emovox import Recognizer
from emovox.config import load_config
from emovox.corpora import open_corpus
from emovox.inference.export import calibration_waves, export_onnx
from emovox.labels import index_of
from emovox.models import load_bundle, load_members, save_ensemble
from emovox.splits import make_folds
from emovox.training.data import machine
from emovox.training.metrics import mean_std, scores

ROOT = Path(__file__).resolve().parents[1]
SAVEE_LIST = ROOT.parent / "shared" / "data" / "savee" / "emobox-track2-savee-4class.csv"
CALIBRATION_CLIPS = 64


def calibration(utts: list, rate: int) -> list[np.ndarray]:
    """CALIBRATION_CLIPS clips spread evenly over ``utts`` (sorted by source)."""
    return calibration_waves(sorted((u.source() for u in utts), key=str), CALIBRATION_CLIPS, rate)


def both(model: Path, tmp: Path, name: str, static: bool, calib) -> dict[str, Recognizer]:
    """float32 and int8 recognizers of ``model``; min_speech_seconds 0: every clip is answered."""
    q = {"quantize": "static", "calibration": calib} if static else {"quantize": "dynamic"}
    return {"float32": Recognizer.load(export_onnx(model, tmp / f"{name}-f32.onnx"), threads=2, min_speech_seconds=0),
            "int8": Recognizer.load(export_onnx(model, tmp / f"{name}-int8.onnx", **q), threads=2, min_speech_seconds=0)}


def fold_model(runs: list[Path], fold: str, tmp: Path) -> Path:
    if len(runs) == 1:
        return runs[0] / fold / "best"
    members = {run.name: load_bundle(run / fold / "best") for run in runs}
    return save_ensemble(members, tmp / f"{fold}-ensemble", extra={"provenance": {"name": f"{fold}-ensemble"}})


def folds(runs: list[Path], static: bool, tmp: Path) -> dict:
    cfg = load_config(runs[0] / "config.yaml")
    utts = open_corpus(cfg.data.corpus, cfg.data.root).utterances()
    rows = []
    for fold in make_folds("emobox", utts, n_val_speakers=cfg.training.val_speakers, seed=cfg.seed,
                           test_corpora=cfg.data.test_corpora):
        model = fold_model(runs, fold.name, tmp)
        calib = calibration([utts[i] for i in fold.train], cfg.preprocessing.features.sample_rate) if static else None
        recs = both(model, tmp, fold.name, static, calib)
        test = [utts[i] for i in fold.test]
        y = np.array([index_of(u.emotion) for u in test])
        row = {"fold": fold.name}
        preds = {}
        for name, rec in recs.items():
            preds[name] = np.array([index_of(rec.predict(u.source()).label) for u in test])
            row[name] = scores(y, preds[name], 8)
        row["agreement"] = float((preds["float32"] == preds["int8"]).mean())
        rows.append(row)
        print(fold.name, {k: round(v, 4) for k, v in row["float32"].items()},
              {k: round(v, 4) for k, v in row["int8"].items()}, "agreement", round(row["agreement"], 4), flush=True)
    res = {"folds": rows}
    for name in ("float32", "int8"):
        for key in ("wa", "ua"):
            res[f"{name}_{key}"], res[f"{name}_{key}_std"] = mean_std([r[name][key] for r in rows])
    res["delta_wa"] = res["int8_wa"] - res["float32_wa"]
    res["delta_ua"] = res["int8_ua"] - res["float32_ua"]
    res["agreement"] = float(np.mean([r["agreement"] for r in rows]))
    return res


def savee(model: Path, static: bool, tmp: Path) -> dict:
    from emovox.training.crosscorpus import test_utterances

    ravdess = open_corpus("ravdess", None).utterances()
    rate = load_members(model)[0].pipeline.sample_rate
    recs = both(model, tmp, "savee", static, calibration(ravdess, rate) if static else None)
    out = {}
    for subset, utts in (("all", test_utterances("savee")), ("emobox-4", test_utterances("savee", SAVEE_LIST))):
        emotions = sorted({u.emotion for u in utts}, key=index_of)
        y = np.array([index_of(u.emotion) for u in utts])
        res = {}
        preds = {}
        for name, rec in recs.items():
            probs = [rec.predict(u.source()).probabilities for u in utts]
            if subset == "all":  # the model's own answer over its 8 emotions
                preds[name] = np.array([index_of(max(p, key=p.get)) for p in probs])
            else:  # EmoBox's reading: the argmax over the list's emotions
                preds[name] = np.array([index_of(max(emotions, key=p.get)) for p in probs])
            res[name] = {"wa": float((preds[name] == y).mean())}
        res["agreement"] = float((preds["float32"] == preds["int8"]).mean())
        out[subset] = res
        print("savee", subset, res, flush=True)
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, default=[ROOT / "runs" / "bench" / "resnet18-mel-emobox"])
    ap.add_argument("--static", action="store_true", help="static quantisation (calibrated) instead of dynamic")
    ap.add_argument("--savee", type=Path, help="also compare this model folder on SAVEE")
    ap.add_argument("--name", help="results file name (default quantize / quantize-static)")
    args = ap.parse_args()
    name = args.name or ("quantize-static" if args.static else "quantize")
    if len({r.name for r in args.runs}) != len(args.runs):
        ap.error("the runs name the ensemble's members: give runs with different folder names")
    configs = [load_config(r / "config.yaml") for r in args.runs]
    if len({(c.seed, c.training.val_speakers) for c in configs}) != 1:
        ap.error("the runs must share their seed and val_speakers (the same folds and validation actors)")
    res = {"command": "python benchmarks/quantize_folds.py " + " ".join(
               [*(["--static"] if args.static else []), *map(str, args.runs),
                *(["--savee", str(args.savee)] if args.savee else []), *(["--name", args.name] if args.name else [])]),
           "sources": [str(r) for r in args.runs], "quantization": "static" if args.static else "dynamic",
           "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        res.update(folds(args.runs, args.static, Path(tmp)))
        if args.savee:
            res["savee"] = {"model": str(args.savee), **savee(args.savee, args.static, Path(tmp))}
    (ROOT / "benchmarks" / "results" / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"float32 WA {100 * res['float32_wa']:.1f} UA {100 * res['float32_ua']:.1f} | int8 WA {100 * res['int8_wa']:.1f} "
          f"UA {100 * res['int8_ua']:.1f} | change WA {100 * res['delta_wa']:+.1f} UA {100 * res['delta_ua']:+.1f} points; "
          f"same label for {100 * res['agreement']:.1f} % of clips")
    return res


if __name__ == "__main__":
    main()
