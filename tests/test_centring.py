"""Speaker-centred training: batches of speaker groups, answers centred as adaptation centres them."""

import copy

import numpy as np
import pytest
import torch

from emovox.adaptation import centre_answers, answer_reference
from emovox.config import load_config
from emovox.training.batches import BatchMaker, speaker_of
from emovox.training.centring import centre_by_group
from emovox.training.data import load_dataset
from emovox.training.distributed import share_of
from emovox.training.trainer import bundle_from, make_optimizer, make_step


def test_centring_a_group_gives_the_answers_adaptation_gives():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 8, generator=g) * 2
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 0])
    centred = centre_by_group(logits, groups).softmax(1).numpy()
    probs = logits.softmax(1).numpy()
    for k in range(3):
        idx = (groups == k).numpy()
        expected = centre_answers(probs[idx], answer_reference(probs[idx]))
        np.testing.assert_allclose(centred[idx], expected, atol=1e-5)
    # a push shared by the whole batch (a voice, a room) is removed: the answers do not change
    shifted = logits + torch.tensor([4.0, 0, 0, 0, 0, 0, 0, -2.0])
    assert torch.allclose(centre_by_group(shifted, groups).softmax(1), centre_by_group(logits, groups).softmax(1),
                          atol=1e-5)


def test_a_lone_clip_is_judged_uniform():
    centred = centre_by_group(torch.tensor([[3.0, -1.0, 0.5]]), torch.tensor([0]))
    assert torch.allclose(centred.softmax(1), torch.full((1, 3), 1 / 3))


@pytest.fixture(scope="module")
def grouped(tiny_config):
    data = load_dataset(tiny_config, progress=False)
    return data, BatchMaker(data, tiny_config.preprocessing, 8, seed=2, speaker_groups=4)


def test_batches_hold_whole_speaker_groups(grouped):
    data, _ = grouped
    maker = BatchMaker(data, grouped[1].pipeline, 6, seed=2, speaker_groups=3)  # 8 clips per actor: 8 % 3 = 2
    order = maker._order(np.random.default_rng(0))
    assert set(order.tolist()) == set(range(len(data)))  # every clip, the short runs topped up
    runs = order.reshape(-1, 3)
    assert all(len({speaker_of(data.utterances[int(i)]) for i in run}) == 1 for run in runs)  # one speaker each
    for batch in maker.epoch(0):
        assert len(batch.y) == 6
        sizes = torch.bincount(batch.groups)
        assert (sizes % 3 == 0).all() and (sizes > 0).all()  # whole runs: nobody alone with their speaker
    half = share_of(next(iter(maker.epoch(1))), 0, 3)
    assert half.groups is not None and len(half.groups) == 3
    with pytest.raises(ValueError, match="whole speaker groups"):
        BatchMaker(data, maker.pipeline, 8, seed=2, speaker_groups=3)


def test_the_step_scores_own_and_centred_answers(grouped, tiny_config):
    data, maker = grouped
    batch = next(iter(maker.epoch(1)))
    model = bundle_from(tiny_config, data.label_names).model.eval()  # one answer: no dropout
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # a push shared by every clip: it moves the plain loss, not the centred one
        head.bias += torch.linspace(-3, 3, len(head.bias))
    extractor = tiny_config.preprocessing.extractor()
    with torch.no_grad():
        logits = model(extractor.finish(batch.windows))
        plain = torch.nn.functional.cross_entropy(logits, batch.y).item()
        centred = torch.nn.functional.cross_entropy(centre_by_group(logits, batch.groups), batch.y).item()
        expected = (plain + centred) / 2  # the clip's own answer and the centred one
    untouched = copy.deepcopy(model)  # the step below moves the weights
    step = make_step(extractor, bf16=False, label_smoothing=0.0, channels_last=False)
    loss, _ = step(model, make_optimizer(tiny_config.training)(model), batch)
    assert loss == pytest.approx(expected, rel=1e-4) and abs(loss - plain) > 0.1
    only = make_step(extractor, bf16=False, label_smoothing=0.0, channels_last=False, centred_weight=1.0)
    loss, _ = only(untouched, make_optimizer(tiny_config.training)(untouched), batch)  # own answers untrained
    assert loss == pytest.approx(centred, rel=1e-4)


@pytest.mark.parametrize("overrides, message", [
    (["training.speaker_groups=1"], "whole number >= 2"),
    (["training.speaker_groups=4", "training.centred_weight=0"], r"in \(0, 1\]"),
    (["training.speaker_groups=4", "training.balance=sampler"], "does not combine"),
    (["training.centred_weight=1"], "set training.speaker_groups"),
    (["training.speaker_groups=6", "training.batch_size=32"], "multiple of"),
])
def test_speaker_group_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_speaker_groups_refuse_the_functionals_model():
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "functionals-prosody.yaml"
    with pytest.raises(ValueError, match="takes its speakers"):
        load_config(config, ["training.speaker_groups=4"])


def test_a_run_trains_on_speaker_groups_and_selects_on_adapted_validation(tiny_config, tmp_path):
    import csv
    import math

    from emovox.training.trainer import train

    cfg = tiny_config.override("training.speaker_groups=4", "training.epochs=2")
    data = load_dataset(cfg, progress=False)
    train_idx = [i for i, u in enumerate(data.utterances) if u.speaker != "03"]
    val_idx = [i for i, u in enumerate(data.utterances) if u.speaker == "03"]
    result = train(cfg, tmp_path / "run", data.subset(train_idx), data.subset(val_idx), progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 2 and all(math.isfinite(float(r["val_ua"])) for r in rows)
    # the epoch was chosen on the validation speaker's answers judged against their mean answer
    from emovox.adaptation import centre_by_speaker
    from emovox.pipeline import ClipClassifier, predict_clips

    val = data.subset(val_idx)
    probs = predict_clips(ClipClassifier(result.best.model.eval(), cfg.preprocessing, labels=result.best.labels),
                          val.images, val.bounds)
    adapted = centre_by_speaker(probs, [u.speaker for u in val.utterances]).argmax(1)
    best = rows[result.best_epoch - 1]
    assert float(best["val_acc"]) == pytest.approx(float((adapted == val.labels).mean()), abs=1e-6)


def test_calibration_of_a_speaker_adaptive_model_reads_its_adapted_answers():
    from emovox.calibration import calibrate

    g = torch.Generator().manual_seed(5)
    labels = np.arange(40) % 4
    speakers = [f"s{i % 2}" for i in range(40)]
    logits = torch.randn(40, 4, generator=g) + 3.0 * torch.nn.functional.one_hot(torch.tensor(labels), 4)
    logits[:, 0] += torch.tensor([8.0 if s == "s0" else -8.0 for s in speakers])  # a push per speaker
    owner, weights = torch.arange(40), torch.ones(40)
    plain = calibrate(logits, weights, owner, labels)
    adapted = calibrate(logits, weights, owner, labels, speakers)
    assert "speaker-adaptive" in adapted["fitted_on"] and "speaker-adaptive" not in plain["fitted_on"]
    assert adapted["nll_after"] < plain["nll_after"]  # the push is gone from the answers it reads
    assert adapted["temperature"] < plain["temperature"] / 2  # no flattening to hide the push


def test_a_validation_speaker_needs_two_clips(tiny_config, tmp_path):
    from emovox.training.trainer import train

    cfg = tiny_config.override("training.speaker_groups=4", "training.epochs=1")
    data = load_dataset(cfg, progress=False)
    train_idx = [i for i, u in enumerate(data.utterances) if u.speaker != "03"]
    one = [next(i for i, u in enumerate(data.utterances) if u.speaker == "03")]
    with pytest.raises(ValueError, match="fewer than 2 clips"):
        train(cfg, tmp_path / "run", data.subset(train_idx), data.subset(one), progress=False)
