"""Protocols: train on each fold's training actors, select on its validation actors, test once
(:func:`evaluate`), or train one run on one fold (:func:`train_on_fold`).

``emobox`` (the 6 actor-disjoint RAVDESS folds), ``loso`` (leave one actor out) and
``random`` (the seed's random 80/20 file split — labelled as such, never mixed with the others).
An interrupted evaluation continues where it stopped: finished folds are kept, a half-trained
fold resumes from its checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig, differs_from_saved, save_config
from ..calibration import clip_probabilities, held_out_calibration
from ..pipeline import ClipClassifier, window_logits
from ..labels import EMOTIONS
from ..safeio import atomic_write_text
from ..splits import Fold, fold_from_spec, make_folds, select_folds
from .data import FeatureSet, load_dataset, machine
from .metrics import confusion, fold_means, scores
from .schedule import read_bounds
from .trainer import CHECKPOINT, TrainResult, train

PROTOCOL_NOTES = {
    "emobox": "actor-disjoint: EmoBox 6 folds of RAVDESS test actors; validation actors from the training actors",
    "loso": "actor-disjoint: leave one actor out; validation actors from the training actors",
    "random": "NOT speaker-independent: random stratified 80/20 file split (the seed recipe's protocol)",
}


def fold_data(cfg: RunConfig, fold: str | None = None, *, progress: bool = True) -> tuple[FeatureSet, Fold]:
    """The dataset of ``cfg`` and its fold ``fold`` (``"emobox:3"``, see
    :func:`~emovox.splits.fold_from_spec`; ``None``: all speakers but the validation ones)."""
    data = load_dataset(cfg, progress=progress)
    chosen = fold_from_spec(fold, data.utterances, n_val_speakers=cfg.training.val_speakers, seed=cfg.seed,
                            test_corpora=cfg.data.test_corpora)
    if fold and progress:
        print(f"fold {chosen.name}: test actors {' '.join(chosen.test_speakers)} held out (not used)")
    return data, chosen


def train_on_fold(cfg: RunConfig, out_dir: str | Path, fold: str | None = None, *, lr_from: str | Path | None = None,
                  resume: bool = False, progress: bool = True) -> TrainResult:
    """One training run in ``out_dir`` on the training speakers of ``fold`` (``None``: all but
    the validation ones, as for a final model), its test speakers never seen. ``lr_from``: an
    ``lr_find.json`` measured on the same fold, whose bounds set the one-cycle schedule.
    One process at a time writes a run folder (a second is refused, naming the first)."""
    import contextlib

    from ..safeio import FileLock
    from .distributed import current

    ctx = current()  # under torchrun: one of N ranks; rank 0 locks and writes the run folder
    with FileLock(out_dir, inside=True) if ctx.is_main else contextlib.nullcontext():
        if lr_from:
            max_lr, div_factor = read_bounds(lr_from, fold)
            cfg = cfg.merged({"training": {"max_lr": max_lr, "div_factor": div_factor}})
        torch.set_num_threads(ctx.threads(cfg.threads))
        progress = progress and ctx.is_main
        with ctx.local_main_first():  # torchrun: one rank per node fills the feature cache, the others read it
            data, chosen = fold_data(cfg, fold, progress=progress)
        if progress:
            print(f"training on {len(chosen.train)} clips, validating on {len(chosen.val)}")
        return train(cfg, out_dir, data.subset(chosen.train), data.subset(chosen.val) if chosen.val else None,
                     resume=resume, progress=progress, provenance={"fold": fold or "all"},
                     fold=chosen.name if fold else None)


def evaluate(cfg: RunConfig, protocol: str, out_dir: str | Path, *, folds: list[str] | None = None,
             progress: bool = True) -> dict:
    """Run ``protocol`` and write ``results.json``, ``results.md`` and ``confusion.png`` to ``out_dir``."""
    from ..plots import plot_confusion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.yaml"
    if saved.exists() and differs_from_saved(cfg, saved):
        raise ValueError(f"{out} holds an evaluation with another config; use a new --out folder")
    save_config(cfg, saved)
    data = load_dataset(cfg, progress=progress)
    for utt, why in data.failed:
        print(f"warning: skipped {utt.path}: {why}")
    all_folds = make_folds(protocol, data.utterances, n_val_speakers=cfg.training.val_speakers,
                           seed=cfg.seed, test_corpora=cfg.data.test_corpora)
    empty = [f.name for f in all_folds if not f.test]
    if empty:  # e.g. a partial copy of the corpus: those folds' test actors are missing
        print(f"note: no test clips for {', '.join(empty)}; those folds are left out")
        all_folds = [f for f in all_folds if f.test]
    if not all_folds:
        raise ValueError(f"protocol {protocol!r} has no fold with test clips in this data")
    if folds:
        all_folds = select_folds(all_folds, folds, protocol)
        if not all_folds:
            raise ValueError(f"no fold named {', '.join(sorted(set(map(str, folds))))} in protocol {protocol!r}")
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
                           provenance={"protocol": protocol, "fold": fold.name}, fold=fold.name)
            train_seconds = sum(r["seconds"] for r in result.history)
            test = data.subset(fold.test)
            classifier = ClipClassifier.from_bundle(result.best)
            logits, weights, owner = window_logits(classifier, test.images, test.bounds)
            probs = clip_probabilities(logits, weights, owner, len(test), float(classifier.temperature))
            pred = probs.argmax(1)
            calibration = held_out_calibration(logits, weights, owner, test.labels, float(classifier.temperature))
            cm = confusion(test.labels, pred, n_classes)
            plot_confusion(cm, data.label_names, run_dir / "confusion_test.png", title=f"{fold.name} test")
            adaptive = speaker_adaptive_scores(classifier, test, n_classes, probs)
            row = {"fold": fold.name, "test_speakers": list(fold.test_speakers),
                   "val_speakers": list(fold.val_speakers), **scores(test.labels, pred, n_classes),
                   "n_train": len(fold.train), "n_val": len(fold.val), "n_test": len(fold.test),
                   "best_epoch": result.best_epoch, "train_seconds": train_seconds,
                   **{f"selected_{k}": v for k, v in result.best.extra.get("validation", {}).items()},
                   "wall_seconds": time.perf_counter() - t0, "calibration": calibration,
                   "speaker_adaptive": adaptive,
                   "confusion": cm.tolist()}
            atomic_write_text(done, json.dumps(row, indent=2) + "\n")  # a fold is finished once this exists
        row = json.loads(done.read_text())
        total += np.array(row["confusion"])
        rows.append(row)
        if progress:
            sa = row.get("speaker_adaptive")
            print(f"{row['fold']}: WA {row['wa']:.3f}  UA {row['ua']:.3f}  F1 {row['f1']:.3f}"
                  + (f"  | speaker-adaptive WA {sa['wa']:.3f}  UA {sa['ua']:.3f}" if sa else ""))
    results = summarize(cfg, protocol, rows, total, data.label_names)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", results_table(results))
    plot_confusion(total, data.label_names, out / "confusion.png", title=f"{protocol}: all folds")
    return results


def speaker_adaptive_scores(classifier: ClipClassifier, test: FeatureSet, n_classes: int,
                            per_clip: np.ndarray | None = None) -> dict:
    """The speaker-adaptive protocol on a fold's test clips: each test speaker judged against all
    their test clips (audio only, no labels): standardised with their statistics (``bins``
    networks, functionals models), else against their mean answer (:mod:`emovox.adaptation`;
    ``per_clip``: the clips' probabilities when already computed)."""
    from ..adaptation import centre_by_speaker
    from ..pipeline import predict_clips, speaker_adaptation, speaker_feature_probabilities

    speakers = test.speakers
    adaptation = speaker_adaptation([classifier])
    if adaptation == "features":
        probs = speaker_feature_probabilities(classifier, test.images, test.bounds, speakers)
    else:
        if per_clip is None:
            per_clip = predict_clips(classifier, test.images, test.bounds)
        probs = centre_by_speaker(per_clip, speakers)
    pred = probs.argmax(1)
    return {**scores(test.labels, pred, n_classes), "confusion": confusion(test.labels, pred, n_classes).tolist(),
            "adaptation": adaptation}


def summarize(cfg: RunConfig, protocol: str, rows: list[dict], total: np.ndarray, labels=EMOTIONS) -> dict:
    settings = cfg.to_dict()
    res = {"protocol": protocol, "protocol_note": PROTOCOL_NOTES[protocol],
           "features": cfg.preprocessing.features.kind, "model": settings["model"], "config": settings,
           "machine": machine(), "folds": [{k: v for k, v in r.items() if k != "confusion"} for r in rows],
           "confusion": total.tolist(), "labels": list(labels)}
    res.update(fold_means(rows, ("wa", "ua", "f1", "train_seconds")))
    if rows and all("speaker_adaptive" in r for r in rows):  # a protocol of its own, beside the per-clip one
        res["speaker_adaptive"] = fold_means(rows, ("wa", "ua", "f1"), lambda r, k: r["speaker_adaptive"][k])
        res["speaker_adaptive"]["adaptation"] = rows[0]["speaker_adaptive"].get("adaptation", "features")
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
    if "speaker_adaptive" in res:
        sa = res["speaker_adaptive"]
        lines += ["", "Speaker-adaptive (each test actor judged against all their test clips: their feature statistics "
                  f"or their mean answer; audio only): WA {100 * sa['wa']:.1f} ± {100 * sa['wa_std']:.1f}, UA {100 * sa['ua']:.1f} ± "
                  f"{100 * sa['ua_std']:.1f}, macro-F1 {100 * sa['f1']:.1f} ± {100 * sa['f1_std']:.1f}"]
    lines += ["", f"Machine: {res['machine']}", ""]
    return "\n".join(lines)
