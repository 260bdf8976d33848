"""Accuracy change of int8 dynamic quantisation, measured on the EmoBox folds.

    python benchmarks/quantize_folds.py [runs/bench/resnet18-mel-emobox]   → benchmarks/results/quantize.json

For each fold of a finished `emovox evaluate --protocol emobox` folder, export the selected model
to ONNX in float32 and in int8, predict the fold's test actors with both (onnxruntime, the same
graph a user runs), and report WA / UA of each and the difference.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from emovox import Recognizer
from emovox.config import load_config
from emovox.corpora import open_corpus
from emovox.inference.export import export_onnx
from emovox.labels import index_of
from emovox.splits import make_folds
from emovox.training.metrics import mean_std, scores

ROOT = Path(__file__).resolve().parents[1]


def main(folder: Path) -> dict:
    cfg = load_config(folder / "config.yaml")
    utts = open_corpus(cfg.data.corpus, cfg.data.root).utterances()
    folds = make_folds("emobox", utts, n_val_speakers=cfg.training.val_speakers, seed=cfg.seed,
                       test_corpora=cfg.data.test_corpora)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fold in folds:
            best = folder / fold.name / "best"
            test = [utts[i] for i in fold.test]
            y = np.array([index_of(u.emotion) for u in test])
            row = {"fold": fold.name}
            for name, q in (("float32", False), ("int8", True)):
                rec = Recognizer.load(export_onnx(best, Path(tmp) / f"{fold.name}-{name}.onnx", quantize=q), threads=2)
                pred = np.array([index_of(rec.predict(u.source()).label) for u in test])
                row[name] = scores(y, pred, 8)
            rows.append(row)
            print(fold.name, {k: round(v, 4) for k, v in row["float32"].items()}, {k: round(v, 4) for k, v in row["int8"].items()}, flush=True)
    res = {"source": str(folder), "folds": rows}
    for name in ("float32", "int8"):
        for key in ("wa", "ua"):
            res[f"{name}_{key}"], res[f"{name}_{key}_std"] = mean_std([r[name][key] for r in rows])
    res["delta_wa"] = res["int8_wa"] - res["float32_wa"]
    res["delta_ua"] = res["int8_ua"] - res["float32_ua"]
    (ROOT / "benchmarks" / "results" / "quantize.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    r = main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "runs" / "bench" / "resnet18-mel-emobox"))
    print(f"float32 WA {100 * r['float32_wa']:.1f} UA {100 * r['float32_ua']:.1f} | int8 WA {100 * r['int8_wa']:.1f} "
          f"UA {100 * r['int8_ua']:.1f} | change WA {100 * r['delta_wa']:+.1f} UA {100 * r['delta_ua']:+.1f} points")
