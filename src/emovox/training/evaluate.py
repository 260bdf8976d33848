"""Protocols: train on each fold's training actors, select on its validation actors, test once.

``emobox`` (the 6 actor-disjoint RAVDESS folds), ``loso`` (leave one actor out) and
``random`` (the seed's random 80/20 file split — labelled as such, never mixed with the others).
An interrupted evaluation continues where it stopped: finished folds are kept, a half-trained
fold resumes from its checkpoint.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import yaml

from ..config import save_config
from ..corpora import open_corpus
from ..calibration import clip_probabilities, held_out_calibration
from ..pipeline import ClipClassifier, window_logits
from ..labels import EMOTIONS
from ..safeio import atomic_write_text
from ..splits import make_folds
from .data import build_features
from .metrics import confusion, fold_means, scores
from .trainer import CHECKPOINT, train

PROTOCOL_NOTES = {
    "emobox": "actor-disjoint: EmoBox 6 folds of RAVDESS test actors; validation actors from the training actors",
    "loso": "actor-disjoint: leave one actor out; validation actors from the training actors",
    "random": "NOT speaker-independent: random stratified 80/20 file split (the seed recipe's protocol)",
}


def machine() -> str:
    """CPU model, its vector extensions that matter for training speed, cores and torch version."""
    import os

    import torch

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{model} ({' '.join(vector) or 'no AVX2'}), {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs, "
            f"torch {torch.__version__}")


def load_dataset(cfg: dict, *, progress: bool = True):
    """The corpora of ``cfg`` and their feature images (cached), labelled with the model's emotions.

    ``data.corpus`` is a name or a list of ``NAME`` / ``NAME=DIR``; ``data.root`` is the folder of a
    single named corpus; ``data.labels`` picks the model's emotions (:data:`LABEL_SETS`).
    """
    from .crosscorpus import load_corpora
    from .data import model_labels
    from .trainer import pipeline_from

    corpus = cfg["data"]["corpus"]
    if isinstance(corpus, str):
        utts = open_corpus(corpus, cfg["data"]["root"]).utterances()
        data = build_features(utts, pipeline_from(cfg), cache_dir=cfg["data"]["cache_dir"], progress=progress)
    else:
        data = load_corpora(list(corpus), pipeline_from(cfg), cache_dir=cfg["data"]["cache_dir"], progress=progress)
    names = model_labels(data.utterances, cfg["data"]["labels"])
    return data if names == data.label_names else data.with_labels(names)


def evaluate(cfg: dict, protocol: str, out_dir: str | Path, *, folds: list[str] | None = None,
             progress: bool = True) -> dict:
    """Run ``protocol`` and write ``results.json``, ``results.md`` and ``confusion.png`` to ``out_dir``."""
    from ..plots import plot_confusion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    if saved.exists() and yaml.safe_load(saved.read_text()) != cfg:
        raise ValueError(f"{out} holds an evaluation with another config; use a new --out folder")
    save_config(cfg, saved)
    data = load_dataset(cfg, progress=progress)
    for utt, why in data.failed:
        print(f"warning: skipped {utt.path}: {why}")
    all_folds = make_folds(protocol, data.utterances, n_val_speakers=cfg["training"]["val_speakers"],
                           seed=cfg["seed"], test_corpora=cfg["data"]["test_corpora"])
    empty = [f.name for f in all_folds if not f.test]
    if empty:  # e.g. a partial copy of the corpus: those folds' test actors are missing
        print(f"note: no test clips for {', '.join(empty)}; those folds are left out")
        all_folds = [f for f in all_folds if f.test]
    if not all_folds:
        raise ValueError(f"protocol {protocol!r} has no fold with test clips in this data")
    if folds:
        wanted = {str(f) for f in folds}
        all_folds = [f for f in all_folds if f.name in wanted or f.name.split("-")[-1] in wanted]
        if not all_folds:
            raise ValueError(f"no fold named {', '.join(sorted(wanted))} in protocol {protocol!r}")
    rows = []
    n_classes = len(data.label_names)
    total = np.zeros((n_classes, n_classes), dtype=np.int64)
    for fold in all_folds:
        run_dir = out / fold.name
        done = run_dir / "test.json"
        if not done.exists():
            t0 = time.perf_counter()
            result = train(cfg, run_dir, data.subset(fold.train), data.subset(fold.val) if fold.val else None,
                           resume=(run_dir / CHECKPOINT).exists(), progress=progress,
                           provenance={"protocol": protocol, "fold": fold.name})
            train_seconds = sum(r["seconds"] for r in result.history)
            test = data.subset(fold.test)
            classifier = ClipClassifier.from_bundle(result.best)
            logits, weights, owner = window_logits(classifier, test.images, test.bounds)
            probs = clip_probabilities(logits, weights, owner, len(test), float(classifier.temperature))
            pred = probs.argmax(1)
            calibration = held_out_calibration(logits, weights, owner, test.labels, float(classifier.temperature))
            cm = confusion(test.labels, pred, n_classes)
            plot_confusion(cm, data.label_names, run_dir / "confusion_test.png", title=f"{fold.name} test")
            row = {"fold": fold.name, "test_speakers": list(fold.test_speakers),
                   "val_speakers": list(fold.val_speakers), **scores(test.labels, pred, n_classes),
                   "n_train": len(fold.train), "n_val": len(fold.val), "n_test": len(fold.test),
                   "best_epoch": result.best_epoch, "train_seconds": train_seconds,
                   **{f"selected_{k}": v for k, v in result.best.extra.get("validation", {}).items()},
                   "wall_seconds": time.perf_counter() - t0, "calibration": calibration,
                   "confusion": cm.tolist()}
            atomic_write_text(done, json.dumps(row, indent=2) + "\n")  # a fold is finished once this exists
        row = json.loads(done.read_text())
        total += np.array(row["confusion"])
        rows.append(row)
        if progress:
            print(f"{row['fold']}: WA {row['wa']:.3f}  UA {row['ua']:.3f}  F1 {row['f1']:.3f}")
    results = summarize(cfg, protocol, rows, total, data.label_names)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_table(results))
    plot_confusion(total, data.label_names, out / "confusion.png", title=f"{protocol}: all folds")
    return results


def summarize(cfg: dict, protocol: str, rows: list[dict], total: np.ndarray, labels=EMOTIONS) -> dict:
    res = {"protocol": protocol, "protocol_note": PROTOCOL_NOTES[protocol],
           "features": cfg["preprocessing"]["features"]["kind"], "model": cfg["model"], "config": cfg,
           "machine": machine(), "folds": [{k: v for k, v in r.items() if k != "confusion"} for r in rows],
           "confusion": total.tolist(), "labels": list(labels)}
    res.update(fold_means(rows, ("wa", "ua", "f1", "train_seconds")))
    if all("calibration" in r for r in rows):  # ECE on the test actors, T fitted on validation actors
        res.update(fold_means(rows, ("test_ece_before", "test_ece_after"), lambda r, k: r["calibration"][k]))
    return res


def results_table(res: dict) -> str:
    """Markdown: one row per fold, then mean ± std."""
    lines = [f"# {res['config']['name']} — protocol `{res['protocol']}`", "", res["protocol_note"], "",
             "| fold | test speakers | WA | UA | macro-F1 | best epoch | train min |",
             "|---|---|---|---|---|---|---|"]
    for r in res["folds"]:
        lines.append(f"| {r['fold']} | {' '.join(r['test_speakers']) if len(r['test_speakers']) <= 6 else str(len(r['test_speakers'])) + ' speakers'} "
                     f"| {100 * r['wa']:.1f} | {100 * r['ua']:.1f} | {100 * r['f1']:.1f} | {r['best_epoch']} "
                     f"| {r['train_seconds'] / 60:.1f} |")
    lines.append(f"| **mean ± std** | | **{100 * res['wa']:.1f} ± {100 * res['wa_std']:.1f}** "
                 f"| **{100 * res['ua']:.1f} ± {100 * res['ua_std']:.1f}** | {100 * res['f1']:.1f} ± {100 * res['f1_std']:.1f} "
                 f"| | {res['train_seconds'] / 60:.1f} |")
    lines += ["", f"Machine: {res['machine']}", ""]
    return "\n".join(lines)
