"""The training loop: one-cycle schedule, model selection on validation actors, resumable.

A run is a folder::

    config.yaml      resolved configuration
    metrics.csv      one row per epoch
    training.png     loss / accuracy / learning rate over training  } drawn when the
    confusion_val.png  validation confusion matrix of the selected epoch } run ends
    best/  last/     model folders (config.json + model.safetensors)
    checkpoint.pt    full state after the last finished epoch (for --resume)
    report.md        a short summary
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..augment import chain_from_config, mixup_from_config
from ..augment import from_config as augment_from_config
from ..adaptation import MIN_CLIPS, centre_by_speaker
from ..config import RunConfig, TrainingConfig, differs_from_saved, save_config
from ..features import FeatureExtractor
from ..labels import EMOTIONS
from ..models.folder import ModelBundle, new_bundle, save_bundle
from ..models.resnet import load_torchvision_weights
from ..pipeline import ClipClassifier, clip_probabilities, predict_clips
from ..safeio import atomic_path, atomic_write_text
from ..threads import step_threads, torch_threads
from .batches import Batch, BatchMaker, speaker_index
from .centring import centre_by_group
from .consistency import js_divergence
from .data import FeatureSet
from .distill import Distillation, distillation_loss
from .distributed import current as distributed_context
from .heads import TrainingHeads, has_intensity, intensity_targets
from .mixstyle import MixStyle
from .metrics import confusion, scores
from .schedule import RangeTest, lr_range_test, one_cycle

CHECKPOINT = "checkpoint.pt"
#: ways to balance the classes: none, draw them equally often, or weight their losses
BALANCE = ("none", "sampler", "loss")
METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_ua", "val_f1", "lr", "seconds"]


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which bf16 has no native kernels; with one of these set the
# CPU is treated as that ISA, which is how a newer machine stands in for an AVX2-only one (docs/performance.md)
ISA_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def bf16_available() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16 or AMX), unless oneDNN is capped below them; elsewhere bf16
    would be emulated and slow."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ISA_CAPS_WITHOUT_BF16:
        return False
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def bundle_from(cfg: RunConfig, labels=EMOTIONS) -> ModelBundle:
    """A fresh model for ``cfg`` (torchvision weights loaded if ``model.pretrained`` is set)."""
    bundle = new_bundle(cfg.preprocessing, cfg.model.name, labels, **cfg.model.options)
    if cfg.model.pretrained:
        load_torchvision_weights(bundle.model, cfg.model.pretrained)
    return bundle


def training_network(bundle: ModelBundle, tcfg: TrainingConfig) -> nn.Module:
    """``bundle``'s network as training takes it: channels-last if set, with MixStyle's hooks
    (training mode only, never saved) if ``training.mixstyle`` is on."""
    model = bundle.model.to(memory_format=torch.channels_last) if tcfg.channels_last else bundle.model
    if tcfg.mixstyle:
        MixStyle(model, tcfg.mixstyle, tcfg.mixstyle_on)
    return model


def make_step(extractor: FeatureExtractor, bf16: bool, label_smoothing: float, channels_last: bool,
              class_weights: torch.Tensor | None = None, distill: Distillation | None = None,
              consistency: float = 0.0, heads: TrainingHeads | None = None,
              centred_weight: float = 0.5) -> Callable:
    """One optimisation step ``(model, optimizer, batch) -> (loss, n_correct)``; ``batch`` is a
    :class:`~emovox.training.batches.Batch` or a plain ``(windows, y)``. With ``distill`` the
    loss blends the labels' cross-entropy with the teachers' soft targets (``batch.soft``). A
    batch with clean views (``batch.clean``) is classified with them in one pass: the mean of
    the two cross-entropies plus ``consistency`` × their answers' Jensen-Shannon divergence
    (:mod:`.consistency`). A batch with speaker groups (``batch.groups``) also scores each answer
    centred on its group's mean (:mod:`.centring`; ``centred_weight`` its share of the loss). With
    ``heads`` (wrapping ``model``) their losses on ``batch.speakers`` and ``batch.intensity`` are
    added (:mod:`.heads`: the speaker head's gradient reversed into the network). ``n_correct`` counts the
    augmented view's answers (centred ones with speaker groups)."""
    loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(model, optimizer, batch):
        windows, y = batch[0], batch[1]
        stats = batch.stats if isinstance(batch, Batch) else None
        x = extractor.finish(windows, stats).contiguous(memory_format=fmt)  # the same normalisation as inference
        paired = isinstance(batch, Batch) and batch.clean is not None
        if paired:
            x = torch.cat([x, extractor.finish(batch.clean, batch.clean_stats).contiguous(memory_format=fmt)])
        groups = batch.groups if isinstance(batch, Batch) else None

        def answer_loss(view):
            """A view's loss and the answers it scores: with speaker groups, the centred answers'
            cross-entropy (what adaptation judges) × ``centred_weight`` and the clips' own (answers
            that stand alone) × the rest."""
            if groups is None:
                return loss_fn(view, y), view
            centred = centre_by_group(view, groups)
            own = (1 - centred_weight) * loss_fn(view, y) if centred_weight < 1 else 0.0
            return own + centred_weight * loss_fn(centred, y), centred

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if heads is not None:
                logits, head_logits = heads(x)
            else:
                logits = model(x)
            if paired:
                logits, clean_logits = logits.float().chunk(2)
                js = js_divergence(logits, clean_logits)  # of the clips' own answers: robustness per clip
                (loss_a, logits), (loss_b, _) = answer_loss(logits), answer_loss(clean_logits)
                loss = (loss_a + loss_b) / 2 + consistency * js
            else:
                loss, logits = answer_loss(logits.float())
            if isinstance(batch, Batch) and batch.y2 is not None:  # mixup: the loss blended like the inputs
                loss = batch.lam * loss + (1 - batch.lam) * loss_fn(logits.float(), batch.y2)
            if distill is not None and isinstance(batch, Batch) and batch.soft is not None:
                kd = distillation_loss(logits.float(), batch.soft, distill.temperature)
                loss = (1 - distill.weight) * loss + distill.weight * kd
            if heads is not None:  # both views of a clip come from its speaker, at its intensity
                twice = (lambda t: t.repeat(2) if paired and t is not None else t)
                loss = loss + heads.loss(head_logits, twice(batch.speakers), twice(batch.intensity))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item(), int((logits.detach().argmax(1) == y).sum())

    return step


def make_optimizer(tcfg: TrainingConfig) -> Callable[[nn.Module], torch.optim.Optimizer]:
    # weight decay on conv/linear weights only, not on BatchNorm or biases
    def build(model: nn.Module) -> torch.optim.Optimizer:
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
        return torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    return build


def class_weights(fs: FeatureSet, balance: str, n_classes: int) -> torch.Tensor | None:
    """``balance="loss"``: each class's loss weighted by the inverse of its share (mean 1)."""
    if balance not in BALANCE:
        raise ValueError(f"training.balance must be one of {', '.join(BALANCE)}, not {balance!r}")
    if balance != "loss":
        return None
    counts = np.bincount(fs.labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def batch_maker(cfg: RunConfig, train_set: FeatureSet, waves: list[np.ndarray] | None,
                soft: torch.Tensor | None = None) -> BatchMaker:
    """The training batches of ``cfg``: window and waveform augmentation, speaker references, balance,
    and the teachers' soft targets ``soft`` (distillation)."""
    tcfg, acfg = cfg.training, dataclasses.asdict(cfg.augment)
    wave_aug = chain_from_config(acfg["wave"], pool=waves, seed=cfg.seed) if acfg["wave"] else None
    return BatchMaker(train_set, cfg.preprocessing, tcfg.batch_size, cfg.seed,
                      augment=augment_from_config(acfg), mixup=mixup_from_config(acfg), waves=waves,
                      wave_augment=wave_aug, speaker_p=float(tcfg.speaker_p), balance=tcfg.balance, soft=soft,
                      paired=tcfg.consistency > 0, speaker_groups=int(tcfg.speaker_groups),
                      speaker_labels=bool(tcfg.speaker_adversary), intensity_labels=bool(tcfg.intensity_head))


def training_waves(cfg: RunConfig, train_set: FeatureSet, progress: bool = True) -> list[np.ndarray] | None:
    """The training clips' waveforms when ``cfg`` augments waveforms, else None."""
    if not cfg.augment.wave:
        return None
    from .data import load_waves

    return load_waves(train_set.utterances, cfg.preprocessing.sample_rate, cache_dir=cfg.data.cache_dir,
                      progress=progress)


def find_lr(cfg: RunConfig, train_set: FeatureSet, *, progress: bool = True,
            waves: list[np.ndarray] | None = None, soft: torch.Tensor | None = None) -> RangeTest:
    """Smith's LR range test on the training data of ``cfg`` (with its loss: ``soft`` for distillation;
    the training heads are left out: the range is that of the emotion loss)."""
    torch.manual_seed(cfg.seed)
    bundle = bundle_from(cfg, train_set.label_names)
    tcfg, lcfg = cfg.training, cfg.lr_find
    bf16 = tcfg.bf16 and bf16_available()
    model = training_network(bundle, tcfg)  # the range of the loss the run will train on
    model.train()
    step = make_step(cfg.preprocessing.extractor(), bf16, tcfg.label_smoothing, tcfg.channels_last,
                     class_weights(train_set, tcfg.balance, len(bundle.labels)),
                     Distillation.from_config(tcfg.distill) if soft is not None else None, tcfg.consistency,
                     centred_weight=float(tcfg.centred_weight))
    with torch_threads(step_threads(torch.get_num_threads(), batch_thread=bool(cfg.augment.wave))):
        return lr_range_test(
            model, lambda m, o, b: step(m, o, b)[0],
            batch_maker(cfg, train_set, waves, soft).endless(),
            make_optimizer(tcfg), start_lr=lcfg.start_lr, end_lr=lcfg.end_lr, steps=lcfg.steps,
            progress=progress,
        )


@dataclass
class TrainResult:
    run_dir: Path
    best: ModelBundle | None  # None on the ranks other than 0 of a distributed run
    best_epoch: int
    history: list[dict]


def _evaluate(classifier: ClipClassifier, fs: FeatureSet, n_classes: int,
              predict: Callable = predict_clips, speakers: list[str] | None = None) -> tuple[dict, np.ndarray]:
    """Validation scores; ``speakers`` (each clip's): of each speaker's answers judged against their mean answer."""
    probs = predict(classifier, fs.images, fs.bounds)
    if speakers is not None:
        probs = centre_by_speaker(probs, speakers)
    pred = probs.argmax(1)
    loss = float(-np.log(np.clip(probs[np.arange(len(fs)), fs.labels], 1e-12, None)).mean())
    s = scores(fs.labels, pred, n_classes)
    return {"val_loss": loss, "val_acc": s["wa"], "val_ua": s["ua"], "val_f1": s["f1"]}, pred


#: metrics a run may select its epoch on, and whether higher is better
SELECTION_METRICS = {"val_ua": True, "val_acc": True, "val_f1": True, "val_loss": False}


def _better(row: dict, best: dict | None, metric: str) -> bool:
    if best is None:
        return True
    if row[metric] != best[metric]:
        return (row[metric] > best[metric]) == SELECTION_METRICS[metric]
    return row["val_loss"] < best["val_loss"]


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    train_set: FeatureSet,
    val_set: FeatureSet | None,
    *,
    resume: bool = False,
    progress: bool = True,
    provenance: dict | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    fold: str | None = None,
) -> TrainResult:
    """Train ``cfg``'s model on ``train_set``, selecting the epoch on ``val_set`` (if given).

    ``resume=True`` continues an interrupted run from ``run_dir/checkpoint.pt``; without it an
    existing checkpoint is an error, so a finished run is never overwritten by accident.
    ``fold``: the protocol fold this run trains on (its name), which picks each distillation
    teacher's model for that fold; ``None`` for a model trained on every speaker.
    """
    from ..plots import plot_confusion, plot_training

    run_dir = Path(run_dir)
    dist = distributed_context()  # torchrun: rank 0 of N writes, every rank trains (see .distributed)
    if cfg.model.name == "functionals":  # a convex fit, no epochs
        from .functionals import fit_functionals

        if dist.distributed:
            raise ValueError("the functionals model is a convex fit in one process: run it without torchrun")
        return fit_functionals(cfg, run_dir, train_set, val_set, resume=resume, provenance=provenance,
                               progress=progress and dist.is_main)
    ckpt_path = run_dir / CHECKPOINT
    progress = progress and dist.is_main
    dist.from_main(lambda: _check_run_folder(run_dir, cfg, resume))  # torchrun: rank 0's folder, every rank's error
    if len(train_set) == 0:
        raise ValueError("no training clips")
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    torch.set_num_threads(dist.threads(cfg.threads))
    train_threads = step_threads(dist.threads(cfg.threads), batch_thread=bool(cfg.augment.wave))
    tcfg, pipe = cfg.training, cfg.preprocessing
    if tcfg.select_on not in SELECTION_METRICS:
        raise ValueError(f"training.select_on must be one of {', '.join(SELECTION_METRICS)}, not {tcfg.select_on!r}")
    torch.manual_seed(cfg.seed)
    bundle = bundle_from(cfg, train_set.label_names)
    model = training_network(bundle, tcfg)
    train_model = dist.wrap(model)  # one process: model itself; torchrun: DistributedDataParallel
    bf16 = bool(tcfg.bf16) and bf16_available()
    heads = None
    if tcfg.speaker_adversary or tcfg.intensity_head:
        if dist.distributed:
            raise ValueError("training.speaker_adversary and training.intensity_head run in one process: "
                             "run them without torchrun")
        if tcfg.intensity_head and not has_intensity(intensity_targets(train_set.utterances)):
            raise ValueError("training.intensity_head needs training clips with an intensity (RAVDESS); "
                             "none of these has one")
        heads = TrainingHeads(model, n_speakers=len(speaker_index(train_set)), adversary=tcfg.speaker_adversary,
                              intensity=tcfg.intensity_head)
    optimizer = make_optimizer(tcfg)(heads if heads is not None else model)  # the heads learn too
    steps_per_epoch = max(1, len(train_set) // tcfg.batch_size)
    epochs = int(tcfg.epochs)

    state = dist.load_checkpoint(ckpt_path)
    waves = training_waves(cfg, train_set, progress)
    distill, soft = Distillation.from_config(tcfg.distill), None
    if distill is not None:  # every rank computes the same targets (inference only, deterministic)
        from .distill import soft_targets, teacher_agreement, teacher_folders

        teachers = teacher_folders(distill.teachers, fold)
        soft = soft_targets(teachers, train_set, bundle.labels, distill.temperature,
                            cache_dir=cfg.data.cache_dir, progress=progress)
        provenance = {**(provenance or {}), "teachers": [str(t) for t in teachers],
                      "teacher_train_accuracy": teacher_agreement(soft, train_set.labels)}
    if state is not None:  # the schedule the run started with (an "auto" range test is not repeated)
        max_lr, div_factor = state["max_lr"], state["div_factor"]
    elif tcfg.max_lr == "auto":
        rt = dist.from_main(lambda: find_lr(cfg, train_set, progress=progress, waves=waves, soft=soft))
        if dist.is_main:
            rt.save(run_dir)
        max_lr, div_factor = rt.one_cycle()
    else:
        max_lr, div_factor = float(tcfg.max_lr), tcfg.div_factor
    scheduler = one_cycle(optimizer, max_lr, epochs * steps_per_epoch, pct_start=tcfg.pct_start,
                          div_factor=div_factor, final_div_factor=tcfg.final_div_factor)
    provenance = {**(provenance or {}), "schedule": {"max_lr": max_lr, "div_factor": div_factor}}  # values used
    history: list[dict] = []
    lr_trace: list[float] = []
    best_row, start_epoch = None, 1
    if state is not None:
        model.load_state_dict(state["model"])
        if heads is not None:
            heads.load_head_state(checkpoint_heads(state))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history, lr_trace = state["history"], state["lr_trace"]
        best_row = state["best_row"] or None
        start_epoch = state["epoch"] + 1

    classifier = ClipClassifier(model, pipe, labels=bundle.labels)
    batches = dist.shard(batch_maker(cfg, train_set, waves, soft))  # torchrun: this rank's share of each batch
    step = make_step(classifier.extractor, bf16, tcfg.label_smoothing, tcfg.channels_last,
                     class_weights(train_set, tcfg.balance, len(bundle.labels)), distill, tcfg.consistency,
                     heads, float(tcfg.centred_weight))
    n_classes = len(bundle.labels)
    select_on = tcfg.select_on
    adapted = bool(tcfg.speaker_groups)  # validation reads the answers the way the model is trained to be read
    val_speakers = val_set.speakers if adapted and val_set is not None else None
    if val_speakers:
        lone = sorted(s for s, n in Counter(val_speakers).items() if n < MIN_CLIPS)
        if lone:
            raise ValueError(f"training.speaker_groups chooses epochs on speaker-adaptive validation answers; "
                             f"validation speakers {', '.join(lone)} have fewer than {MIN_CLIPS} clips")
    bar = tqdm(range(start_epoch, epochs + 1), desc=f"train {run_dir.name}", unit="epoch",
               initial=start_epoch - 1, total=epochs, disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        losses, correct, seen = [], 0, 0
        with torch_threads(train_threads):  # validation below keeps all the threads
            for batch in batches.epoch(epoch):
                loss, n_ok = step(train_model, optimizer, batch)
                scheduler.step()
                lr_trace.append(scheduler.get_last_lr()[0])
                losses.append(loss)
                correct, seen = correct + n_ok, seen + len(batch[1])
        train_loss, correct, seen = dist.epoch_totals(losses, correct, seen)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": correct / seen,
               "val_loss": math.nan, "val_acc": math.nan, "val_ua": math.nan, "val_f1": math.nan,
               "lr": lr_trace[-1]}
        if val_set is not None and len(val_set):
            metrics, _ = _evaluate(classifier, val_set, n_classes, dist.predict_clips, val_speakers)
            row.update(metrics)
            if _better(row, best_row, select_on):
                best_row = dict(row)
                if dist.is_main:
                    save_bundle(_with_model(bundle, model, cfg, provenance, row), run_dir / "best")
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_ua=f"{row['val_ua']:.3f}")
        if dist.is_main:
            save_bundle(_with_model(bundle, model, cfg, provenance, row), run_dir / "last")
            _write_metrics(run_dir / "metrics.csv", history)
            _save_checkpoint(ckpt_path, model, optimizer, scheduler, epoch, history, lr_trace, best_row, max_lr,
                             div_factor, heads)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    if best_row is None:  # no validation actors: the last epoch is the model
        best_row = history[-1]
        if dist.is_main:
            save_bundle(_with_model(bundle, model, cfg, provenance, best_row), run_dir / "best")
    if not dist.is_main:  # the run folder is rank 0's (it may live on another node)
        return TrainResult(run_dir, None, int(best_row["epoch"]), history)
    from ..models.folder import load_bundle

    # the figures once, at the end: a pair takes about 2 s on 2 AVX2 cores, a tenth of an epoch or more
    plot_training(history, run_dir / "training.png", lr_trace=lr_trace)
    best = load_bundle(run_dir / "best")
    if val_set is not None and len(val_set):
        logits = validation_logits(best, val_set)  # once, for the confusion matrix and the calibration
        probs = clip_probabilities(logits[0], logits[1], 1.0, logits[2], len(val_set)).numpy()
        if adapted:  # the answers the epoch was chosen on
            probs = centre_by_speaker(probs, val_speakers)
        plot_confusion(confusion(val_set.labels, probs.argmax(1), n_classes), bundle.labels,
                       run_dir / "confusion_val.png",
                       title=f"validation{' (speaker-adaptive)' if adapted else ''}, epoch {best_row['epoch']}")
        if "calibration" not in best.extra:
            best.extra["calibration"] = calibrate_on(best, val_set, logits, adapted=adapted)
            save_bundle(best, run_dir / "best")
    _write_report(run_dir, cfg, history, best_row, bf16, len(train_set), len(val_set) if val_set else 0)
    return TrainResult(run_dir, best, int(best_row["epoch"]), history)


def _check_run_folder(run_dir: Path, cfg: RunConfig, resume: bool) -> None:
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new folder")
    if ckpt_path.exists() and (run_dir / "config.yaml").exists():
        if differs_from_saved(cfg, run_dir / "config.yaml"):
            raise ValueError(f"{run_dir} was started with another config; resume it with the same settings "
                             "(see its config.yaml) or start a new folder")


def validation_logits(bundle: ModelBundle, fs: FeatureSet):
    """``bundle``'s window logits, weights and owners on the clips of ``fs`` (uncalibrated)."""
    from ..pipeline import window_logits

    return window_logits(ClipClassifier(bundle.model, bundle.pipeline, labels=bundle.labels), fs.images, fs.bounds)


def calibrate_on(bundle: ModelBundle, fs: FeatureSet, logits=None, adapted: bool = False) -> dict:
    """Temperature scaling of ``bundle`` on the clips of ``fs`` (validation actors);
    ``logits``: its :func:`validation_logits` when already computed; ``adapted``: fitted on the
    speaker-adaptive answers (a model trained on them: ``training.speaker_groups``)."""
    from ..calibration import calibrate

    speakers = fs.speakers if adapted else None
    return calibrate(*(logits if logits is not None else validation_logits(bundle, fs)), fs.labels, speakers)


def _with_model(bundle: ModelBundle, model: nn.Module, cfg: RunConfig, provenance: dict | None, row: dict) -> ModelBundle:
    settings = cfg.to_dict()
    extra = {"provenance": {"name": cfg.name, "seed": cfg.seed, "epoch": row["epoch"],
                            **{k: settings[k] for k in ("training", "augment", "data")},
                            **(provenance or {})},
             "validation": {k: row[k] for k in ("val_acc", "val_ua", "val_f1") if not math.isnan(row[k])}}
    if cfg.training.speaker_groups:
        extra["validation"]["speaker_adaptive"] = True  # the scores of answers judged against each speaker's mean
    return ModelBundle(model, bundle.pipeline, bundle.labels, bundle.model_name, bundle.model_options, extra)


def checkpoint_heads(state: dict) -> dict:
    """The training heads' weights in a checkpoint; one written before the intensity head existed
    kept the speaker head alone, under ``adversary``."""
    if state.get("heads") is None and state.get("adversary"):
        return {f"speaker_head.{k}": v for k, v in state["adversary"].items()}
    if state.get("heads") is None:
        raise ValueError("this checkpoint holds no training heads, but the run's settings have some: "
                         "resume it with the settings it started with")
    return state["heads"]


def _save_checkpoint(path, model, optimizer, scheduler, epoch, history, lr_trace, best_row, max_lr, div_factor,
                     heads=None):
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "epoch": epoch, "history": history, "lr_trace": lr_trace, "best_row": best_row or {},
             "max_lr": max_lr, "div_factor": div_factor, "torch_rng": torch.get_rng_state(),
             "heads": heads.head_state() if heads is not None else None}
    with atomic_path(path) as tmp:  # temporary file, fsync, rename: a kill leaves the previous checkpoint
        torch.save(state, tmp)


def _write_metrics(path: Path, history: list[dict]) -> None:
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, fieldnames=METRIC_FIELDS)
    w.writeheader()
    for row in history:
        w.writerow({k: row.get(k) for k in METRIC_FIELDS})
    atomic_write_text(path, out.getvalue())


def _write_json(path: Path, data) -> None:
    import json

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _write_report(run_dir: Path, cfg: RunConfig, history, best_row, bf16: bool, n_train: int, n_val: int) -> None:
    seconds = sum(r["seconds"] for r in history)
    lines = [
        f"# Run {run_dir.name}", "",
        f"- config: `{cfg.name}` — {cfg.model.name} (width {cfg.model.width}), "
        f"features `{cfg.preprocessing.features.kind}`, seed {cfg.seed}",
        f"- clips: {n_train} training, {n_val} validation",
        f"- epochs: {len(history)}, training time {seconds / 60:.1f} min on {cfg.threads} threads "
        f"({'bf16 autocast' if bf16 else 'fp32'})",
        f"- selected epoch: {best_row['epoch']} (on {cfg.training.select_on if n_val else 'last epoch: no validation'})",
    ]
    if n_val:
        lines.append(f"- validation at that epoch: WA {best_row['val_acc']:.3f}, UA {best_row['val_ua']:.3f}, "
                     f"macro-F1 {best_row['val_f1']:.3f}")
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
