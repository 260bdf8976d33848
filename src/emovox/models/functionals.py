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
from ..pitch import VOICED_APERIODICITY

QUANTILES = (0.1, 0.5, 0.9)
#: statistics per coefficient: mean, std, std of the deltas, the quantiles
N_STATS = 3 + len(QUANTILES)
#: pitch statistics: F0 mean, std, quantiles and their range, F0 delta spread and mean size,
#: voiced fraction, mean aperiodicity, voicing onsets per frame
N_PITCH = 6 + len(QUANTILES) + 2
#: a frame-to-frame F0 step larger than this (semitones) is a tracking error, not intonation
MAX_STEP = 3.0


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


def functionals(db: torch.Tensor, first=None, end=None) -> torch.Tensor:
    """One clip's dB image ``[bins, frames]`` and its voiced frames ``[first, end)`` (default: all)
    → its functional vector ``[bins * N_STATS]``; a batch of equal-length images ``[batch, bins,
    frames]`` with ``first``, ``end`` ``[batch]`` → ``[batch, bins * N_STATS]``.

    The statistics are masked sums over the whole image rather than a slice of it, so that the
    exported graph has no shape that depends on the data; the deltas see the voiced part with its
    edge frames repeated, as they would on the slice alone. One voiced frame: spreads are 0."""
    n = db.shape[-1]
    t = torch.arange(n, device=db.device)
    first = torch.as_tensor(0 if first is None else first, device=db.device).unsqueeze(-1)  # against t
    end = torch.as_tensor(n if end is None else end, device=db.device).unsqueeze(-1)
    mask = ((t >= first) & (t < end)).to(db.dtype).unsqueeze(-2)  # [..., 1, frames]
    count = mask.sum(-1).clamp_min(1.0)  # [..., 1]
    mean = (db * mask).sum(-1, keepdim=True) / count[..., None]
    std = ((((db - mean) ** 2) * mask).sum(-1) / count).sqrt()
    inside = torch.minimum(torch.maximum(t, first), torch.maximum(end - 1, first))  # outside: the edge frames
    d = deltas(db.gather(-1, inside.unsqueeze(-2).expand(db.shape)))
    d_mean = (d * mask).sum(-1, keepdim=True) / count[..., None]
    d_std = ((((d - d_mean) ** 2) * mask).sum(-1) / count).sqrt()
    q = _masked_quantiles(db, mask, count)  # [..., Q, bins]
    return torch.cat([mean.squeeze(-1), std, d_std, q.flatten(-2)], dim=-1)


def pitch_functionals(rows: torch.Tensor, first=None, end=None) -> torch.Tensor:
    """The two pitch rows of an image (semitones, aperiodicity) ``[..., 2, frames]`` and the
    voiced bounds → :data:`N_PITCH` statistics ``[..., N_PITCH]`` over the periodic frames inside
    the bounds (aperiodicity below :data:`~emovox.pitch.VOICED_APERIODICITY`; every frame inside
    the bounds when fewer than 3 are periodic). Masked sums, like :func:`functionals`."""
    semitones, aperiodicity = rows[..., 0, :], rows[..., 1, :]
    n = semitones.shape[-1]
    t = torch.arange(n, device=rows.device)
    first = torch.as_tensor(0 if first is None else first, device=rows.device).unsqueeze(-1)
    end = torch.as_tensor(n if end is None else end, device=rows.device).unsqueeze(-1)
    inside = ((t >= first) & (t < end)).to(rows.dtype)
    periodic = inside * (aperiodicity < VOICED_APERIODICITY).to(rows.dtype)
    enough = periodic.sum(-1, keepdim=True) >= 3
    mask = torch.where(enough, periodic, inside)
    count = mask.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (semitones * mask).sum(-1, keepdim=True) / count
    std = (((semitones - mean) ** 2 * mask).sum(-1, keepdim=True) / count).sqrt()
    q = _masked_quantiles(semitones.unsqueeze(-2), mask.unsqueeze(-2), count)[..., 0]  # [..., Q]
    step = semitones[..., 1:] - semitones[..., :-1]
    pair = periodic[..., 1:] * periodic[..., :-1] * (step.abs() < MAX_STEP).to(rows.dtype)
    pairs = pair.sum(-1, keepdim=True)
    step_mean = (step * pair).sum(-1, keepdim=True) / pairs.clamp_min(1.0)
    step_std = ((((step - step_mean) ** 2) * pair).sum(-1, keepdim=True) / pairs.clamp_min(1.0)).sqrt()
    step_size = (step.abs() * pair).sum(-1, keepdim=True) / pairs.clamp_min(1.0)
    few = pairs < 3
    step_std, step_size = torch.where(few, 0.0, step_std), torch.where(few, 0.0, step_size)
    frames = inside.sum(-1, keepdim=True).clamp_min(1.0)
    voiced = periodic.sum(-1, keepdim=True) / frames
    rough = (aperiodicity * inside).sum(-1, keepdim=True) / frames
    # a periodic frame after an aperiodic one, both inside the bounds (as on the voiced slice alone)
    onsets = ((periodic[..., 1:] - periodic[..., :-1]).clamp_min(0.0) * inside[..., :-1]).sum(-1, keepdim=True) / frames
    spread = q[..., -1:] - q[..., :1]
    return torch.cat([mean, std, q, spread, step_std, step_size, voiced, rough, onsets], dim=-1)


def _masked_quantiles(db: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """:data:`QUANTILES` of the masked frames of each row ``[..., Q, bins]``, interpolated
    linearly like ``torch.quantile`` (whose data-dependent input length does not export)."""
    big = torch.finfo(db.dtype).max
    ordered = torch.where(mask > 0, db, big).sort(-1).values  # the voiced values first, in order
    pos = torch.tensor(QUANTILES, dtype=db.dtype, device=db.device) * (count - 1)  # [..., Q]
    lo = pos.floor()
    frac = (pos - lo).unsqueeze(-2)  # [..., 1, Q]
    lo_i = lo.long()
    hi_i = torch.minimum(lo_i + 1, (count - 1).long())
    shape = (*db.shape[:-1], pos.shape[-1])  # [..., bins, Q]
    at_lo = ordered.gather(-1, lo_i.unsqueeze(-2).expand(shape))
    at_hi = ordered.gather(-1, hi_i.unsqueeze(-2).expand(shape))
    return (at_lo + (at_hi - at_lo) * frac).transpose(-1, -2)


class FunctionalsClassifier(nn.Module):
    """Functional vector → standardised → linear layer. ``center`` and ``scale`` are the training
    clips' statistics, used when no speaker reference is given."""

    clip_level = True

    def __init__(self, num_classes: int, in_channels: int = 1, bins: int = 40, pitch_rows: int = 0) -> None:
        super().__init__()
        if in_channels != 1:
            raise ValueError("the functionals model takes one-channel images (features.deltas: false)")
        if pitch_rows not in (0, 2) or bins <= pitch_rows:
            raise ValueError(f"pitch_rows is 0 or 2 (F0 and aperiodicity, the image's last rows) and fewer than "
                             f"bins; got pitch_rows={pitch_rows}, bins={bins}")
        self.pitch = pitch_rows == 2
        self.spectral = bins - pitch_rows
        n = self.spectral * N_STATS + (N_PITCH if self.pitch else 0)
        self.bins = bins
        self.register_buffer("center", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.head = nn.Linear(n, num_classes)

    def functionals(self, images, bounds=None) -> torch.Tensor:
        """Clips' dB images (a list of ``[bins, frames]``, or ``[K, 1, bins, frames]``) and their
        voiced frames ``bounds`` (``(first, end)`` each; default: every frame) → ``[K, F]``."""
        if torch.is_tensor(images) and images.dim() == 4:
            images = images[:, 0]
        bounds = bounds if bounds is not None else [(None, None)] * len(images)
        return torch.stack([self.batch_functionals(img.float(), a, b) for img, (a, b) in zip(images, bounds)])

    def batch_functionals(self, db: torch.Tensor, first=None, end=None) -> torch.Tensor:
        """Equal-length dB images ``[K, bins, frames]`` (or one ``[bins, frames]``) and their voiced
        frames ``[K]`` → ``[K, F]``: the spectral rows' statistics, then the pitch rows'."""
        db = db.float()
        spectral = functionals(db[..., :self.spectral, :], first, end)
        if not self.pitch:
            return spectral
        return torch.cat([spectral, pitch_functionals(db[..., self.spectral:, :], first, end)], dim=-1)

    def classify(self, f: torch.Tensor, reference: Reference | None = None) -> torch.Tensor:
        """Functional vectors ``[K, F]`` → logits ``[K, classes]``; ``reference``: each row's
        standardisation (``mean``/``std`` of ``[F]`` or ``[K, F]``), else the training clips'."""
        mean, std = (self.center, self.scale) if reference is None else reference
        return self.head((f - mean) / std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.functionals(x))


def functionals_model(num_classes: int, in_channels: int = 1, bins: int = 40, pitch_rows: int = 0) -> FunctionalsClassifier:
    return FunctionalsClassifier(num_classes, in_channels, bins, pitch_rows)
