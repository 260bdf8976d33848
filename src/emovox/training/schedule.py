"""Learning-rate policies: the one-cycle schedule and Smith's LR range test."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..safeio import atomic_write_text


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, *, pct_start: float,
              div_factor: float, final_div_factor: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """Smith's one-cycle policy (LR up from ``max_lr/div_factor`` then annealed, momentum inverse)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(total_steps, 2), pct_start=pct_start,
        div_factor=div_factor, final_div_factor=final_div_factor, anneal_strategy="cos",
    )


@dataclass
class RangeTest:
    """Result of :func:`lr_range_test`: the curve and the suggested bounds."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    lower: float
    upper: float

    def to_dict(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "lrs": self.lrs, "losses": self.losses,
                "smoothed": self.smoothed}

    def one_cycle(self) -> tuple[float, float]:
        """``(max_lr, div_factor)``: :func:`one_cycle_bounds` of these bounds."""
        return one_cycle_bounds(self.lower, self.upper)

    def save(self, out_dir: str | Path, *, fold: str | None = None) -> Path:
        """Write ``lr_find.json`` (bounds and curve; ``fold``: the training actors measured on,
        checked by :func:`read_bounds`) and ``lr_find.png`` to ``out_dir``; returns the JSON."""
        from ..plots import plot_lr_find

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot_lr_find(self.lrs, self.losses, out / "lr_find.png", lower=self.lower, upper=self.upper,
                     smoothed=self.smoothed)
        path = out / "lr_find.json"
        atomic_write_text(path, json.dumps({**({"fold": fold} if fold else {}), **self.to_dict()}, indent=2) + "\n")
        return path


def one_cycle_bounds(lower: float, upper: float) -> tuple[float, float]:
    """LR range-test bounds → the one-cycle ``(max_lr, div_factor)`` that rises from ``lower``
    to ``upper`` (:func:`one_cycle` starts at ``max_lr / div_factor``)."""
    return upper, upper / lower


def read_bounds(path: str | Path, fold: str | None) -> tuple[float, float]:
    """``(max_lr, div_factor)`` from an ``lr_find.json`` for a run training on ``fold`` (``None``:
    all actors but validation). Bounds measured on other training actors are refused: the
    test must not have seen the run's held-out actors, and they would not fit its data."""
    bounds = json.loads(Path(path).read_text())
    measured_on, training_on = bounds.get("fold", "all"), fold or "all"
    if measured_on != training_on:
        raise ValueError(f"{path} was measured on fold {measured_on!r}, this run trains on "
                         f"{training_on!r}: run the LR range test on the same training actors "
                         f"(emovox lr-find{' --fold ' + fold if fold else ''})")
    return one_cycle_bounds(bounds["lower"], bounds["upper"])


def suggest_bounds(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """Upper bound: a tenth of the LR at the lowest smoothed loss, safely before divergence
    (the common reading of Smith's test); lower bound: a tenth of the upper."""
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise ValueError("the LR range test diverged at once: every loss is NaN or infinite")
    stop = int(np.argmin(finite)) if not finite.all() else len(smoothed)  # cut at the first divergence
    upper = float(lrs[int(np.argmin(smoothed[:stop]))]) / 10.0
    return upper / 10.0, upper


def lr_range_test(
    model: nn.Module,
    step: Callable[[nn.Module, torch.optim.Optimizer, object], float],
    batches: Iterator,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 100,
    beta: float = 0.9,
    progress: bool = True,
) -> RangeTest:
    """Raise the LR exponentially from ``start_lr`` to ``end_lr`` over ``steps`` batches,
    recording the loss; stop early once the smoothed loss exceeds 4x its minimum.
    The model passed in is left untouched (the test trains a copy)."""
    from tqdm.auto import tqdm

    model = copy.deepcopy(model)
    optimizer = make_optimizer(model)
    gamma = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    for i in tqdm(range(steps), desc="lr-find", unit="step", disable=not progress):
        lr = start_lr * gamma**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = step(model, optimizer, next(batches))
        avg = beta * avg + (1 - beta) * loss
        s = avg / (1 - beta ** (i + 1))
        lrs.append(lr), losses.append(loss), smoothed.append(s)
        best = min(best, s)
        if not math.isfinite(s) or (i > 10 and s > 4 * best):
            break
    lower, upper = suggest_bounds(np.array(lrs), np.array(smoothed))
    return RangeTest(lrs, losses, smoothed, lower, upper)
