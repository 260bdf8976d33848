"""Consistency training: clean and augmented views of each clip, their answers pulled together."""

import math

import numpy as np
import pytest
import torch

from emovox.augment import Gain
from emovox.config import load_config
from emovox.training.batches import Batch, BatchMaker
from emovox.training.consistency import js_divergence
from emovox.training.data import load_dataset, load_waves
from emovox.training.distributed import share_of
from emovox.training.trainer import bundle_from, make_step, make_optimizer


def test_js_divergence_is_symmetric_bounded_and_zero_on_agreement():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    assert js_divergence(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert js_divergence(a, b).item() == pytest.approx(js_divergence(b, a).item(), rel=1e-5)
    assert 0.0 < js_divergence(a, b).item() < math.log(2)
    sure = torch.full((1, 2), -30.0)
    assert js_divergence(sure.index_fill(1, torch.tensor([0]), 30.0), sure.index_fill(1, torch.tensor([1]), 30.0)) \
        .item() == pytest.approx(math.log(2), rel=1e-3)  # certain of two different classes


@pytest.fixture(scope="module")
def paired(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    waves = load_waves(data.utterances, tiny_config.preprocessing.sample_rate, cache_dir=tiny_config.data.cache_dir,
                       progress=False)
    quieter = Gain(low=-20.0, high=-20.0)
    maker = BatchMaker(data, tiny_config.preprocessing, 8, seed=3, waves=waves, wave_augment=quieter, paired=True)
    return data, maker


def test_paired_batches_hold_each_clips_clean_window(paired):
    data, maker = paired
    batch = next(iter(maker.epoch(0)))
    assert batch.clean.shape == batch.windows.shape
    # the augmented view went 20 dB down, the clean one is the recording as it is
    assert (batch.clean - batch.windows).mean().item() > 10.0
    again = next(iter(maker.epoch(0)))
    assert torch.equal(batch.clean, again.clean) and torch.equal(batch.windows, again.windows)
    half = share_of(batch, 0, 4)  # a distributed rank's share keeps the views together
    assert torch.equal(half.clean, batch.clean[:4]) and torch.equal(half.windows, batch.windows[:4])


def test_the_step_averages_both_views_and_adds_their_divergence(paired, tiny_config):
    data, maker = paired
    batch = next(iter(maker.epoch(1)))
    bundle = bundle_from(tiny_config, data.label_names)
    model = bundle.model.train()
    extractor = tiny_config.preprocessing.extractor()
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    with torch.no_grad():
        torch.manual_seed(0)
        logits = model(torch.cat([extractor.finish(batch.windows), extractor.finish(batch.clean)]))
        aug, clean = logits.chunk(2)
        expected = (loss_fn(aug, batch.y) + loss_fn(clean, batch.y)) / 2 + 3.0 * js_divergence(aug, clean)
    step = make_step(extractor, bf16=False, label_smoothing=0.1, channels_last=False, consistency=3.0)
    torch.manual_seed(0)  # the same dropout draws
    loss, n_ok = step(model, make_optimizer(tiny_config.training)(model), batch)
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    assert n_ok == int((aug.argmax(1) == batch.y).sum())  # counted on the augmented view


def test_an_unpaired_batch_keeps_the_plain_loss(tiny_config):
    g = torch.Generator().manual_seed(1)
    windows, y = torch.randn(4, 64, 40, generator=g) * 10 - 40, torch.tensor([0, 1, 2, 3])
    bundle = bundle_from(tiny_config)
    model = bundle.model.eval()  # no dropout, BatchNorm's running statistics: one answer
    extractor = tiny_config.preprocessing.extractor()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(extractor.finish(windows)), y).item()
    step = make_step(extractor, bf16=False, label_smoothing=0.0, channels_last=False, consistency=3.0)
    loss, _ = step(model, make_optimizer(tiny_config.training)(model), Batch(windows, y, None))
    assert loss == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("overrides, message", [
    (["training.consistency=1"], "needs augment.wave"),
    (["training.consistency=-1"], "number >= 0"),
    (["training.consistency=1", "augment.wave={gain: {p: 0.5}}", "augment.mixup={alpha: 0.4}"], "does not combine"),
])
def test_consistency_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_a_clean_view_refuses_mixup(paired):
    from emovox.augment import Mixup

    data, maker = paired
    with pytest.raises(ValueError, match="mixup"):
        BatchMaker(data, maker.pipeline, 8, seed=0, waves=maker.waves, wave_augment=maker.wave_augment,
                   mixup=Mixup(0.4), paired=True)
