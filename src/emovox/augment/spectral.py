"""Training-time augmentations of feature windows: one small class each, and a Compose.

Each takes a batch of un-normalised dB windows ``[batch, bins, frames]`` and the epoch's numpy
generator (so a resumed run draws exactly what an uninterrupted one would) and returns a batch
of the same shape. Prediction never augments.
"""

from __future__ import annotations

import numpy as np
import torch


class SpecAugment:
    """Frequency and time masks (Park et al. 2019): bands of bins and runs of frames set to the
    window's mean level, so per-window standardisation is not skewed by the mask.

    Parameters
    ----------
    freq_masks, freq_width : how many frequency masks, each up to ``freq_width`` bins wide.
    time_masks, time_width : how many time masks, each up to ``time_width`` frames long.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 20) -> None:
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = x.clone()
        fill = x.mean(dim=(-2, -1))
        for i in range(x.shape[0]):
            for axis, count, width in ((-2, self.freq_masks, self.freq_width), (-1, self.time_masks, self.time_width)):
                size = x.shape[axis]
                for _ in range(count):
                    w = int(rng.integers(0, min(width, size) + 1))
                    start = int(rng.integers(0, size - w + 1))
                    if axis == -2:
                        x[i, start:start + w, :] = fill[i]
                    else:
                        x[i, :, start:start + w] = fill[i]
        return x


class Mixup:
    """Mixup (Zhang et al. 2018): each window is blended with another of the batch,
    ``lam·x + (1−lam)·x[perm]``, ``lam ~ Beta(alpha, alpha)`` (one per batch), and the loss is
    blended the same way. Windows are mixed as dB images, before per-window standardisation.
    """

    def __init__(self, alpha: float = 0.4) -> None:
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be positive, got {alpha}")
        self.alpha = alpha

    def draw(self, n: int, rng: np.random.Generator) -> tuple[float, torch.Tensor]:
        """The blend weight and each sample's partner for a batch of ``n``."""
        lam = float(rng.beta(self.alpha, self.alpha))
        return lam, torch.from_numpy(rng.permutation(n))

    def mix(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
        """``(x, y)`` → ``(mixed x, y, y of the partners, lam)``."""
        lam, perm = self.draw(len(x), rng)
        return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


class Compose:
    """Apply augmentations in order."""

    def __init__(self, augmentations: list) -> None:
        self.augmentations = list(augmentations)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for aug in self.augmentations:
            x = aug(x, rng)
        return x


#: config name → class, for ``augment:`` in a recipe (window-only augmentations; ``mixup``,
#: which also mixes labels, is separate)
AUGMENTATIONS = {"spec_augment": SpecAugment}


def from_config(cfg: dict) -> Compose | None:
    """``{"spec_augment": {...}}`` (``None`` entries off) → a Compose, or None if nothing is on."""
    unknown = set(cfg) - set(AUGMENTATIONS) - {"mixup", "wave"}
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(sorted(unknown))}; expected "
                         f"{', '.join(sorted([*AUGMENTATIONS, 'mixup', 'wave']))}")
    chosen = [AUGMENTATIONS[name](**(opts or {})) for name, opts in cfg.items()
              if opts is not None and name in AUGMENTATIONS]
    return Compose(chosen) if chosen else None


def mixup_from_config(cfg: dict) -> Mixup | None:
    opts = cfg.get("mixup")
    return Mixup(**opts) if opts is not None else None
