"""training.intensity_head: a multi-task head on RAVDESS's intensity labels, training only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from emovox.config import load_config
from emovox.corpora.base import Utterance
from emovox.training.batches import BatchMaker
from emovox.training.data import load_dataset
from emovox.training.heads import UNKNOWN, TrainingHeads, intensity_targets
from emovox.training.trainer import bundle_from, make_optimizer, make_step, train


def _utt(intensity: str | None) -> Utterance:
    extra = (("intensity", intensity),) if intensity else ()
    return Utterance("x.wav", "angry", "01", "male", "ravdess-speech" if intensity else "savee", extra=extra)


def test_targets_are_the_intensity_index_and_unknown_elsewhere():
    targets = intensity_targets([_utt("normal"), _utt("strong"), _utt(None)])
    assert targets.tolist() == [0, 1, UNKNOWN]


def test_the_loss_adds_the_weighted_intensity_cross_entropy_over_known_clips_only():
    model = torch.nn.Module()
    model.fc, model.dropout = torch.nn.Linear(4, 3), torch.nn.Identity()
    model.embed = lambda x: x
    heads = TrainingHeads(model, intensity=0.5)
    logits = {"intensity": torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])}
    targets = torch.tensor([0, 1, UNKNOWN])
    expected = 0.5 * torch.nn.functional.cross_entropy(logits["intensity"][:2], targets[:2])
    torch.testing.assert_close(heads.loss(logits, None, targets), expected)
    assert heads.loss(logits, None, torch.full((3,), UNKNOWN)).item() == 0.0  # a batch with none: no loss, no NaN
    assert heads.loss(logits, None, None).item() == 0.0  # a batch made without intensities


def test_the_step_trains_the_intensity_head_and_the_emotion_answer_is_the_networks(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    strong = [dataclasses.replace(u, extra=(("intensity", "strong" if k % 2 else "normal"),))
              for k, u in enumerate(data.utterances)]  # the tiny corpus holds normal clips only
    data = dataclasses.replace(data, utterances=strong)
    batch = next(iter(BatchMaker(data, tiny_config.preprocessing, 8, seed=1, intensity_labels=True).epoch(1)))
    assert set(batch.intensity.tolist()) <= {0, 1}
    model = bundle_from(tiny_config, data.label_names).model.eval()
    heads = TrainingHeads(model, intensity=0.3)
    extractor = tiny_config.preprocessing.extractor()
    x = extractor.finish(batch.windows)
    with torch.no_grad():
        logits, aux = heads(x)
        assert torch.allclose(logits, model(x), atol=1e-5) and set(aux) == {"intensity"}
        expected = (torch.nn.functional.cross_entropy(logits, batch.y)
                    + 0.3 * torch.nn.functional.cross_entropy(aux["intensity"], batch.intensity)).item()
    before = [p.detach().clone() for p in heads.intensity_head.parameters()]
    step = make_step(extractor, bf16=False, label_smoothing=0.0, channels_last=False, heads=heads)
    loss, _ = step(model, make_optimizer(tiny_config.training)(heads), batch)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert all(not torch.equal(a, b) for a, b in zip(before, heads.intensity_head.parameters()))


def test_a_pooled_network_trains_with_the_head(tiny_config, tmp_path):
    from .conftest import train_tiny

    cfg = tiny_config.override("training.intensity_head=0.3", "training.epochs=1", "model.pooling=stats")
    _, result = train_tiny(cfg, tmp_path / "run")
    assert result.best.model_options["pooling"] == "stats" and len(result.history) == 1


def test_a_training_set_without_intensities_is_refused(tiny_config, tmp_path):
    cfg = tiny_config.override("training.intensity_head=0.3", "training.epochs=1")
    data = load_dataset(cfg, progress=False)
    data = dataclasses.replace(data, utterances=[dataclasses.replace(u, extra=()) for u in data.utterances])
    with pytest.raises(ValueError, match="needs training clips with an intensity"):
        train(cfg, tmp_path / "run", data, None, progress=False)


@pytest.mark.parametrize("overrides, message", [
    (["training.intensity_head=-1"], "number >= 0"),
    (["training.intensity_head=0.3", "augment.mixup={alpha: 0.4}"], "unblended"),
])
def test_intensity_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)
