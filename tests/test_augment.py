"""Augmentations: shapes, what gets masked, determinism, Compose, config."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from emovox.augment import Compose, Mixup, SpecAugment, from_config, mixup_from_config
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
    assert from_config(asdict(load_config().augment)) is None  # off by default
    cfg = load_config(None, ["augment.spec_augment={freq_masks: 1, time_width: 10}"])
    (aug,) = from_config(asdict(cfg.augment)).augmentations
    assert isinstance(aug, SpecAugment) and aug.freq_masks == 1 and aug.time_width == 10
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["augment.noise=1"])


def test_mixup_blends_windows_and_keeps_both_labels():
    x = torch.stack([torch.full((4, 6), float(i)) for i in range(8)])
    y = torch.arange(8)
    mixed, y1, y2, lam = Mixup(alpha=0.4).mix(x, y, np.random.default_rng(1))
    assert mixed.shape == x.shape and 0 <= lam <= 1 and torch.equal(y1, y)
    assert sorted(y2.tolist()) == list(range(8))  # a permutation of the batch
    expected = lam * y.float() + (1 - lam) * y2.float()
    assert torch.allclose(mixed[:, 0, 0], expected)
    again = Mixup(alpha=0.4).mix(x, y, np.random.default_rng(1))
    assert again[3] == lam and torch.equal(again[0], mixed)
    with pytest.raises(ValueError):
        Mixup(alpha=0)


def test_mixup_from_config_and_a_training_step(tiny_config, tmp_path):
    from emovox.config import load_config
    from emovox.training.data import load_dataset
    from emovox.training.trainer import train

    assert mixup_from_config(asdict(load_config().augment)) is None
    cfg = load_config(None, [f"data.root={tiny_config.data.root}", f"data.cache_dir={tiny_config.data.cache_dir}",
                             "model.width=8", "training.epochs=1", "training.batch_size=4", "training.max_lr=0.003",
                             "augment.mixup={alpha: 0.4}"])
    assert isinstance(mixup_from_config(asdict(cfg.augment)), Mixup)
    assert from_config(asdict(cfg.augment)) is None  # mixup is not a window-only augmentation
    data = load_dataset(cfg, progress=False).subset(range(8))  # two mixed batches are enough
    result = train(cfg, tmp_path / "run", data, None, progress=False)
    assert len(result.history) == 1 and all(np.isfinite(r["train_loss"]) for r in result.history)
