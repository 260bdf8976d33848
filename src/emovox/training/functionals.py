"""Fitting the functionals model (:mod:`emovox.models.functionals`): a convex fit, not epochs.

Each training clip's functional vector is standardised with its own speaker's statistics
(every training speaker's clips pooled, no labels needed), then a multinomial logistic
regression is fitted (scikit-learn, L2). Its strength ``C`` is chosen on the validation
speakers' UA, each standardised with their own statistics too — the speaker-adaptive use the
model is made for — or, with ``training.cv_folds: k``, by grouped k-fold cross-validation over
the training speakers (every training speaker held out once: less selection noise than 4
validation speakers). ``training.c_grid`` replaces the grid; a single value fixes ``C``. Without
validation speakers (a final model on every speaker, e.g. the bundled speaker-adaptive one) the
cross-validation's out-of-fold logits also fit both temperatures. The model keeps the training
rows' pooled statistics, which standardise a clip when no speaker reference is at hand (the
per-clip answer).

``training.copies: k`` with ``augment.wave`` adds k augmented copies of every training clip: in
copy j all of a speaker's clips pass through the same degradation (one room, microphone, codec),
and are standardised together, as a speaker recorded in one place is at test time. Validation and
the cross-validation's test rows stay clean.

The run folder is the trainer's: ``config.yaml``, ``metrics.csv`` (one row per ``C`` tried),
``best/`` (the model folder), ``report.md``.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..adaptation import indices_by
from ..calibration import calibrate
from ..config import RunConfig, save_config
from ..models.folder import ModelBundle, load_bundle, new_bundle, save_bundle
from ..models.functionals import Reference
from ..pipeline import ClipClassifier
from .data import FeatureSet
from .metrics import scores

log = logging.getLogger(__name__)

#: L2 strengths tried (scikit-learn's C: larger is weaker)
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
RESULT_FIELDS = ["C", "cv_ua_speaker", "train_loss", "train_acc", "val_acc", "val_ua", "val_f1", "val_acc_speaker",
                 "val_ua_speaker", "val_f1_speaker", "seconds"]


def _functionals(classifier: ClipClassifier, fs: FeatureSet) -> torch.Tensor:
    with torch.inference_mode():
        return classifier.model.functionals(fs.images, fs.bounds)


def speaker_standardised(f: torch.Tensor, fs: FeatureSet) -> torch.Tensor:
    """Each row standardised with the functionals of all its speaker's clips."""
    return group_standardised(f, fs.speakers)


def group_standardised(f: torch.Tensor, groups: list) -> torch.Tensor:
    """Each row standardised with the functionals of every row of its group (a speaker, or a
    speaker's clips through one degradation)."""
    out = torch.empty_like(f)
    for g, idx in indices_by(groups).items():
        if len(idx) < 2:
            raise ValueError(f"speaker {g} has one clip: speaker standardisation needs several")
        ref = Reference.of(f[idx])
        out[idx] = (f[idx] - ref.mean) / ref.std.clamp_min(1e-6)
    return out


@dataclass
class TrainingRows:
    """What the logistic regression is fitted on: the clean training clips first (``n_clean``
    rows), then ``training.copies`` augmented copies of each; ``speakers`` per row (the folds of
    the cross-validation), ``x`` standardised per speaker and copy, ``f`` as computed."""

    f: torch.Tensor
    x: np.ndarray
    labels: np.ndarray
    speakers: list[str]
    n_clean: int


def training_rows(cfg: RunConfig, classifier: ClipClassifier, train_set: FeatureSet, *, progress: bool = True) -> TrainingRows:
    f = [_functionals(classifier, train_set)]
    speakers = train_set.speakers
    groups = list(speakers)
    if cfg.training.copies:
        from .trainer import training_waves

        waves = training_waves(cfg, train_set, progress)
        for k in range(1, cfg.training.copies + 1):
            f.append(augmented_functionals(cfg, classifier, waves, speakers, k, progress=progress))
            groups += [(s, k) for s in speakers]
    f, rows = torch.cat(f), 1 + cfg.training.copies
    return TrainingRows(f, group_standardised(f, groups).double().numpy(), np.tile(np.asarray(train_set.labels), rows),
                        speakers * rows, len(train_set))


def augmented_functionals(cfg: RunConfig, classifier: ClipClassifier, waves: list[np.ndarray], speakers: list[str],
                          k: int, *, progress: bool = True) -> torch.Tensor:
    """The functionals of copy ``k`` of every clip through ``augment.wave``. Each augmentation
    draws from a generator seeded by (seed, k, speaker, its place in the chain): all of a
    speaker's clips get the same settings (one room, one microphone, one codec for a session,
    as the speaker-adaptive protocol assumes), other speakers and copies other ones."""
    import zlib

    from tqdm import tqdm

    from ..augment import chain_from_config

    chain = chain_from_config(cfg.augment.wave, pool=waves, seed=cfg.seed)
    images, bounds = [], []
    for wave, speaker in tqdm(list(zip(waves, speakers)), desc=f"augmented copy {k}", unit="clip", disable=not progress):
        for j, aug in enumerate(chain.augmentations):
            wave = aug(wave, np.random.default_rng([cfg.seed, k, zlib.crc32(speaker.encode()), j]))
        db, voiced = classifier.analyse(wave)  # trimmed anew, as a degraded recording would be
        images.append(db)
        bounds.append(voiced)
    with torch.inference_mode():
        return classifier.model.functionals(images, bounds)


def fit_functionals(cfg: RunConfig, run_dir: str | Path, train_set: FeatureSet, val_set: FeatureSet | None, *,
                    resume: bool = False, provenance: dict | None = None, progress: bool = True):
    """Fit ``cfg``'s functionals model; the same contract as :func:`emovox.training.trainer.train`."""
    from sklearn.linear_model import LogisticRegression

    from .trainer import TrainResult

    run_dir = Path(run_dir)
    if (run_dir / "best").is_dir() and (run_dir / "report.md").is_file():
        if not resume:
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new folder")
        best = load_bundle(run_dir / "best")
        history = _read_history(run_dir / "metrics.csv")
        return TrainResult(run_dir, best, 1, history)
    if len(train_set) == 0:
        raise ValueError("no training clips")
    pipe = cfg.check().preprocessing
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    torch.set_num_threads(cfg.threads)
    labels = train_set.label_names
    options = {"bins": pipe.features.bins, **({"pitch_rows": 2} if pipe.features.pitch else {})}
    bundle = new_bundle(pipe, "functionals", labels, **options)
    classifier = ClipClassifier(bundle.model, pipe, labels=labels)
    data = training_rows(cfg, classifier, train_set, progress=progress)
    f_train, x_train, clean = data.f, data.x, slice(0, data.n_clean)
    have_val = val_set is not None and len(val_set) > 0
    x_val = speaker_standardised(_functionals(classifier, val_set), val_set).double().numpy() if have_val else None
    model = bundle.model
    model.center.copy_(f_train.mean(0))
    model.scale.copy_(f_train.std(0, unbiased=False).clamp_min(1e-6))
    balanced = cfg.training.balance != "none"
    n_classes = len(labels)
    rows, fits = [], []
    folds = cfg.training.cv_folds
    cv = _speaker_folds(train_set, folds) if folds else None  # test rows: clean clips of the held-out speakers
    grid = tuple(cfg.training.c_grid or C_GRID)
    if not (have_val or cv or len(grid) == 1):
        raise ValueError("nothing to choose C on: give validation speakers, training.cv_folds, or one training.c_grid value")
    for c in grid:
        t0 = time.perf_counter()
        lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced" if balanced else None)
        cv_ua, oof = None, None
        if cv:
            cv_ua, *oof = _cross_validate(lr, data, cv, n_classes)
        lr.fit(x_train, data.labels)
        _set_head(model, lr, n_classes)
        p_train = lr.predict_proba(x_train[clean])
        cols = list(lr.classes_)
        row = {"C": c, **({"cv_ua_speaker": cv_ua} if cv else {}), "train_acc": float((lr.classes_[p_train.argmax(1)] == train_set.labels).mean()),
               "train_loss": float(-np.log(np.clip(p_train[np.arange(len(p_train)), [cols.index(y) for y in train_set.labels]], 1e-12, None)).mean())}
        if have_val:
            row.update(_val_metrics(classifier, val_set, x_val, n_classes))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        fits.append((lr, oof))
    on = "cv_ua_speaker" if cv else "val_ua_speaker"  # speaker-adaptive UA on speakers the fit did not see
    pick = max(range(len(rows)), key=lambda i: (rows[i].get(on, 0.0), -i)) if len(rows) > 1 else 0
    _set_head(model, fits[pick][0], n_classes)
    best_row = rows[pick]
    extra = {"provenance": {"name": cfg.name, "seed": cfg.seed, "fit": "logistic regression",
                            "C": best_row["C"], "data": cfg.to_dict()["data"], "training": {"balance": cfg.training.balance},
                            **(provenance or {})},
             "validation": {k: best_row[k] for k in ("val_acc", "val_ua", "val_f1", "val_ua_speaker") if k in best_row}}
    best = ModelBundle(model, pipe, labels, "functionals", options, extra)
    if have_val:
        from .trainer import calibrate_on

        best.extra["calibration"] = calibrate_on(best, val_set)
        # speaker-adaptive answers have their own scale: a second temperature, on the same speakers
        with torch.inference_mode():
            adaptive = model.head(torch.as_tensor(x_val, dtype=torch.float32))
        best.extra["calibration"].update(_speaker_calibration(adaptive, val_set.labels))
    elif cv:
        # no validation speakers (a final model trained on every speaker): both temperatures from
        # the cross-validation's out-of-fold logits at the chosen C, every training clip held out once
        adaptive, per_clip = (torch.as_tensor(z, dtype=torch.float32) for z in fits[pick][1])
        n = len(train_set)
        best.extra["calibration"] = {
            **calibrate(per_clip, torch.ones(n), torch.arange(n), train_set.labels),
            **_speaker_calibration(adaptive, train_set.labels),
            "fitted_on": f"out-of-fold logits of {n} training clips ({folds}-fold cross-validation over the "
                         "training speakers, at the chosen C)"}
    save_bundle(best, run_dir / "best")
    _write_rows(run_dir / "metrics.csv", rows)
    _write_report(run_dir, cfg, rows, best_row, len(train_set), len(val_set) if have_val else 0)
    history = [{"epoch": 1, **{k: best_row.get(k, math.nan) for k in ("train_loss", "train_acc", "val_acc", "val_ua",
                                                                        "val_f1")}, "seconds": sum(r["seconds"] for r in rows)}]
    return TrainResult(run_dir, load_bundle(run_dir / "best"), 1, history)


def _speaker_calibration(adaptive: torch.Tensor, labels) -> dict:
    """The speaker-adaptive answers' temperature, fitted on their logits ``adaptive``."""
    n = len(adaptive)
    fitted = calibrate(adaptive, torch.ones(n), torch.arange(n), labels)
    return {"speaker_temperature": fitted["temperature"], "speaker_ece_before": fitted["ece_before"],
            "speaker_ece_after": fitted["ece_after"]}


def _speaker_folds(fs: FeatureSet, k: int) -> list[np.ndarray]:
    """``k`` groups of the training speakers (sorted, dealt round robin): each a held-out fold."""
    speakers = sorted(set(fs.speakers))
    if not 2 <= k <= len(speakers):
        raise ValueError(f"training.cv_folds must be 0 or 2..{len(speakers)} (training speakers), got {k}")
    held = {s: i % k for i, s in enumerate(speakers)}
    owner = np.array([held[s] for s in fs.speakers])
    return [np.flatnonzero(owner == i) for i in range(k)]


def _cross_validate(lr, data: TrainingRows, folds: list[np.ndarray], n_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``lr`` refitted without each fold's speakers (their augmented copies too) and tested on
    their clean clips: the mean speaker-adaptive UA, and every clean clip's out-of-fold logits,
    speaker-adaptive (speaker-standardised) and per clip (standardised with the fold's training
    rows pooled, as the model does alone)."""
    from sklearn.base import clone

    labels, uas, n = data.labels, [], data.n_clean
    adaptive = np.full((n, n_classes), -30.0)
    per_clip = np.full((n, n_classes), -30.0)
    f, speakers = data.f.double().numpy(), np.asarray(data.speakers)
    for test in folds:
        train = np.flatnonzero(~np.isin(speakers, speakers[test]))
        fitted = clone(lr).fit(data.x[train], labels[train])
        uas.append(scores(labels[test], fitted.predict(data.x[test]), n_classes)["ua"])
        center, scale = f[train].mean(0), np.clip(f[train].std(0), 1e-6, None)
        for out, rows in ((adaptive, data.x[test]), (per_clip, (f[test] - center) / scale)):
            out[np.ix_(test, fitted.classes_)] = _logits(fitted, rows)
    return float(np.mean(uas)), adaptive, per_clip


def _logits(lr, rows: np.ndarray) -> np.ndarray:
    """The logistic regression's class scores (what the linear head computes), one column per class."""
    z = lr.decision_function(rows)
    return np.column_stack([-z / 2, z / 2]) if z.ndim == 1 else z  # two classes: one score, as in _set_head


def _set_head(model, lr, n_classes: int) -> None:
    """Copy a fitted logistic regression into the linear layer; a class the training clips
    lack gets a bias that keeps its probability near zero."""
    weight = torch.zeros(n_classes, model.head.in_features)
    bias = torch.full((n_classes,), -30.0)
    coef, intercept = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # scikit-learn keeps one row for two classes
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    for row, cls in enumerate(lr.classes_):
        weight[cls] = torch.as_tensor(coef[row], dtype=torch.float32)
        bias[cls] = float(intercept[row])
    # the head sees (f - center) / scale; scikit-learn saw the speaker-standardised vectors,
    # which are on the same scale: the weights carry over as they are
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


def _val_metrics(classifier: ClipClassifier, val_set: FeatureSet, x_val: np.ndarray, n_classes: int) -> dict:
    from ..pipeline import predict_clips

    per_clip = predict_clips(classifier, val_set.images, val_set.bounds).argmax(1)
    with torch.inference_mode():
        adaptive = classifier.model.head(torch.as_tensor(x_val, dtype=torch.float32)).argmax(1).numpy()
    a, b = scores(val_set.labels, per_clip, n_classes), scores(val_set.labels, adaptive, n_classes)
    return {"val_acc": a["wa"], "val_ua": a["ua"], "val_f1": a["f1"],
            "val_acc_speaker": b["wa"], "val_ua_speaker": b["ua"], "val_f1_speaker": b["f1"]}


def _write_rows(path: Path, rows: list[dict]) -> None:
    from ..safeio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) for k in RESULT_FIELDS})


def _read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()} for r in csv.DictReader(f)]


def _write_report(run_dir: Path, cfg: RunConfig, rows, best_row, n_train: int, n_val: int) -> None:
    from ..safeio import atomic_write_text

    lines = [f"# Run {run_dir.name}", "",
             f"- config: `{cfg.name}` — utterance functionals + logistic regression, features "
             f"`{cfg.preprocessing.features.kind}`, seed {cfg.seed}",
             f"- clips: {n_train} training, {n_val} validation (each speaker standardised with their own statistics)"
             + (f"; {cfg.training.copies} augmented copies of each training clip (augment.wave), each speaker's "
                "copy standardised on its own" if cfg.training.copies else ""),
             f"- C tried: {', '.join(str(r['C']) for r in rows)}; chosen: {best_row['C']}"
             + (f" (speaker-adaptive UA {best_row['cv_ua_speaker']:.3f} in {cfg.training.cv_folds}-fold "
                "cross-validation over the training speakers)" if cfg.training.cv_folds
                else " (on the validation speakers' speaker-adaptive UA)" if n_val else " (no validation speakers)")]
    if n_val:
        lines.append(f"- validation at that C: per clip WA {best_row['val_acc']:.3f}, UA {best_row['val_ua']:.3f}; "
                     f"speaker-adaptive WA {best_row['val_acc_speaker']:.3f}, UA {best_row['val_ua_speaker']:.3f}")
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
