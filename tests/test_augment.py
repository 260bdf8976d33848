"""Augmentations: shapes, what gets masked, determinism, Compose, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox.augment import Compose, SpecAugment, from_config
from emovox.config import load_config


def test_spec_augment_masks_bands_and_runs_with_the_mean():
    x = torch.arange(2 * 10 * 30, dtype=torch.float32).view(2, 10, 30)
    out = SpecAugment(freq_masks=1, freq_width=3, time_masks=1, time_width=5)(x, np.random.default_rng(0))
    assert out.shape == x.shape and not torch.equal(out, x) and torch.equal(x, torch.arange(600.0).view(2, 10, 30))
    for i in range(2):
        changed = out[i] != x[i]
        assert torch.allclose(out[i][changed], x[i].mean())  # masked cells hold the window's mean
        rows = changed.all(dim=1).sum().item()
        cols = changed.all(dim=0).sum().item()
        assert rows <= 3 and cols <= 5 and changed.sum() <= 3 * 30 + 5 * 10


def test_spec_augment_is_deterministic_for_a_generator():
    x = torch.randn(4, 64, 157)
    aug = SpecAugment()
    a = aug(x, np.random.default_rng([0, 3]))
    b = aug(x, np.random.default_rng([0, 3]))
    assert torch.equal(a, b) and not torch.equal(a, aug(x, np.random.default_rng([0, 4])))


def test_compose_applies_in_order_and_config_switches_on():
    calls = []

    class Tag:
        def __init__(self, name):
            self.name = name

        def __call__(self, x, rng):
            calls.append(self.name)
            return x + 1

    assert Compose([Tag("a"), Tag("b")])(torch.zeros(1), None).item() == 2 and calls == ["a", "b"]
    assert from_config(load_config()["augment"]) is None  # off by default
    cfg = load_config(None, ["augment.spec_augment={freq_masks: 1, time_width: 10}"])
    (aug,) = from_config(cfg["augment"]).augmentations
    assert isinstance(aug, SpecAugment) and aug.freq_masks == 1 and aug.time_width == 10
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["augment.mixup=1"])
