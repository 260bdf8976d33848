"""Utterance functionals + a linear classifier: a small model that carries to other voices.

Each clip's voiced frames (an MFCC image) are summarised by statistics over time — per
coefficient the mean, the standard deviation, the standard deviation of the first time
derivative and three quantiles — then standardised and classified by one linear layer
(multinomial logistic regression, fitted by :mod:`emovox.training.functionals`).

Why this shape: on RAVDESS → SAVEE it is the standardisation that matters. With one global
standardisation (per clip) it is no better than the ResNet; with each speaker's own statistics
(speaker-adaptive: several clips of one speaker, no labels) it is far better, because what a
speaker's voice and microphone add to every clip cancels, and a linear layer on 280 numbers has
little room to learn the training actors' voices. See docs/generalisation.md.

The model sees a whole clip, not fixed windows (``clip_level``): :class:`emovox.pipeline.ClipClassifier`
hands it the voiced frames.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..features import deltas

QUANTILES = (0.1, 0.5, 0.9)
#: statistics per coefficient: mean, std, std of the deltas, the quantiles
N_STATS = 3 + len(QUANTILES)


class Reference(NamedTuple):
    """The standardisation of functional vectors: a mean and a standard deviation per
    functional ``[F]`` (the training clips' for a per-clip answer, a speaker's for an adaptive one)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, functionals: torch.Tensor) -> "Reference":
        """The reference of several clips' functionals ``[N, F]`` (N ≥ 2)."""
        if functionals.shape[0] < 2:
            raise ValueError("a speaker reference of a functionals model needs at least 2 clips of the speaker")
        return cls(functionals.mean(0), functionals.std(0, unbiased=False))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Reference":
        return cls(torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32))


def functionals(db: torch.Tensor) -> torch.Tensor:
    """One clip's voiced frames ``[bins, frames]`` → its functional vector ``[bins * N_STATS]``."""
    if db.shape[-1] < 2:  # one frame has no spread; repeat it so every statistic is defined
        db = db.expand(-1, 2) if db.shape[-1] == 1 else db.new_zeros(db.shape[0], 2)
    d = deltas(db[None, None])[0, 0]
    q = torch.quantile(db, torch.tensor(QUANTILES, dtype=db.dtype), dim=-1)  # [Q, bins]
    return torch.cat([db.mean(-1), db.std(-1, unbiased=False), d.std(-1, unbiased=False), q.reshape(-1)])


class FunctionalsClassifier(nn.Module):
    """Functional vector → standardised → linear layer. ``center`` and ``scale`` are the training
    clips' statistics, used when no speaker reference is given."""

    clip_level = True

    def __init__(self, num_classes: int, in_channels: int = 1, bins: int = 40) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("the functionals model takes one-channel images (features.deltas: false)")
        n = bins * N_STATS
        self.bins = bins
        self.register_buffer("center", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.head = nn.Linear(n, num_classes)

    def functionals(self, images) -> torch.Tensor:
        """Clips' voiced frames (a list of ``[bins, frames]``, or ``[K, 1, bins, frames]``) → ``[K, F]``."""
        if torch.is_tensor(images) and images.dim() == 4:
            images = images[:, 0]
        return torch.stack([functionals(img.float()) for img in images])

    def classify(self, f: torch.Tensor, reference: Reference | None = None) -> torch.Tensor:
        """Functional vectors ``[K, F]`` → logits ``[K, classes]``; ``reference``: each row's
        standardisation (``mean``/``std`` of ``[F]`` or ``[K, F]``), else the training clips'."""
        mean, std = (self.center, self.scale) if reference is None else reference
        return self.head((f - mean) / std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.functionals(x))


def functionals_model(num_classes: int, in_channels: int = 1, bins: int = 40) -> FunctionalsClassifier:
    return FunctionalsClassifier(num_classes, in_channels, bins)
