"""Knowledge distillation: one student network learns from its teachers' softened answers.

``training.distill: {teachers: [...], weight: w, temperature: T}``. Before training, the teachers
(model folders, ensemble folders, or — under a protocol — run folders holding each fold's selected
model in ``<run>/<fold>/best``) judge every training clip once, each with its own features
computed from the decoded audio; the mean of their clip probabilities at temperature ``T`` is the
clip's soft target. Every step then minimises ``(1 - w)·CE(labels) + w·T²·KL(soft ‖ student/T)``
(Hinton et al., 2015). Meant to fold an ensemble into one network; measured in
docs/performance.md (issue 14, goal 3): with teachers judging their own training clips, no gain yet.

A teacher never hears a test actor: under a protocol each fold's teacher is the one trained on
that fold's training actors, and a plain model folder (trained on everyone) is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.folder import CONFIG_NAME, load_members
from ..pipeline import ClipClassifier, clip_probabilities, ensemble_mean, window_logits
from .data import FeatureSet, load_waves

KEYS = ("teachers", "weight", "temperature")


@dataclass(frozen=True)
class Distillation:
    teachers: tuple[str, ...]
    weight: float = 0.5
    temperature: float = 2.0

    @classmethod
    def from_config(cls, d: dict | None) -> "Distillation | None":
        """``training.distill`` checked: ``None`` (off) or a mapping of :data:`KEYS`."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError(f"training.distill must be a mapping with {', '.join(KEYS)}, got {d!r}")
        unknown = sorted(set(d) - set(KEYS))
        if unknown:
            raise ValueError(f"training.distill: unknown key {unknown[0]!r}; expected {', '.join(KEYS)}")
        teachers = d.get("teachers")
        if isinstance(teachers, str):
            teachers = [teachers]
        if not isinstance(teachers, list) or not teachers or not all(isinstance(t, str) and t for t in teachers):
            raise ValueError(f"training.distill.teachers must name one or more model or run folders, got {teachers!r}")
        weight, temperature = d.get("weight", cls.weight), d.get("temperature", cls.temperature)
        for name, v in (("weight", weight), ("temperature", temperature)):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ValueError(f"training.distill.{name} must be a number, got {v!r}")
        if not 0 < weight <= 1:
            raise ValueError(f"training.distill.weight must be in (0, 1], got {weight}")
        if not 0 < temperature <= 20:
            raise ValueError(f"training.distill.temperature must be in (0, 20], got {temperature}")
        return cls(tuple(teachers), float(weight), float(temperature))


def teacher_folders(teachers: tuple[str, ...], fold: str | None) -> list[Path]:
    """Each teacher's model folder for ``fold`` (a protocol's fold name, or ``None`` for a model
    trained on every speaker but the validation ones)."""
    out = []
    for t in teachers:
        path = Path(t)
        per_fold = path / fold / "best" if fold else None
        if per_fold is not None and (per_fold / CONFIG_NAME).is_file():
            out.append(per_fold)
        elif fold:
            raise FileNotFoundError(
                f"teacher {t}: no {per_fold}. Under a protocol each fold needs a teacher that never heard its "
                f"test actors: give the folder of an `emovox evaluate` run of the same protocol and seed")
        elif (path / CONFIG_NAME).is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"teacher {t}: not a model or ensemble folder (no {CONFIG_NAME})")
    return out


def soft_targets(folders: list[Path], fs: FeatureSet, labels: tuple[str, ...], temperature: float, *,
                 cache_dir=None, progress: bool = True) -> torch.Tensor:
    """The teachers' mean clip probabilities at ``temperature`` for the clips of ``fs`` ``[N, C]``."""
    classifiers = [ClipClassifier.from_bundle(b) for folder in folders for b in load_members(folder)]
    for c in classifiers:
        if tuple(c.labels) != tuple(labels):
            raise ValueError(f"a teacher answers {list(c.labels)}, the student {list(labels)}: they must match")
    waves = {r: load_waves(fs.utterances, r, cache_dir=cache_dir, progress=progress)  # as each teacher's features need
             for r in sorted({c.pipeline.sample_rate for c in classifiers})}
    probs = []
    for c in tqdm(classifiers, desc="teachers", unit="model", disable=not progress):
        extractor = c.pipeline.extractor()
        images, bounds = zip(*(c.pipeline.analyse(w, extractor) for w in waves[c.pipeline.sample_rate]))
        logits, weights, owner = window_logits(c, list(images), list(bounds))
        probs.append(clip_probabilities(logits.double(), weights.double(), temperature, owner, len(fs)))
    return ensemble_mean(probs).float()


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T²·KL(soft ‖ softmax(logits / T))``, averaged over the batch (the T² keeps its gradients
    on the scale of the cross-entropy's)."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_p, soft, reduction="batchmean")


def teacher_agreement(soft: torch.Tensor, labels: np.ndarray) -> float:
    """How often the teachers' top answer is the label on their own training clips (a sanity figure)."""
    return float((soft.argmax(1).numpy() == labels).mean()) if len(labels) else float("nan")
