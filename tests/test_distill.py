"""Distillation: its settings, which teacher a fold gets, the loss, and a real run on teachers' targets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from emovox.config import load_config
from emovox.models.folder import load_bundle, save_ensemble
from emovox.pipeline import ClipClassifier, clip_probabilities, window_logits
from emovox.training.data import load_dataset
from emovox.training.distill import Distillation, distillation_loss, soft_targets, teacher_folders
from emovox.training.trainer import train


def test_settings_are_checked():
    d = Distillation.from_config({"teachers": "runs/a", "weight": 0.7})
    assert d == Distillation(("runs/a",), 0.7, 2.0)
    assert Distillation.from_config(None) is None
    for bad, words in [({"teachers": []}, "teachers"), ({"teachers": ["a"], "weight": 0}, "weight"),
                       ({"teachers": ["a"], "weight": 1.5}, "weight"), ({"teachers": ["a"], "temperature": -1}, "temperature"),
                       ({"teachers": ["a"], "alpha": 0.5}, "alpha"), ({"teachers": ["a"], "weight": "x"}, "weight"),
                       ("runs/a", "mapping")]:
        with pytest.raises(ValueError, match=words):
            Distillation.from_config(bad)
    with pytest.raises(ValueError, match="functionals"):
        load_config(None, ["model.name=functionals", "preprocessing.features.normalize=none",
                           "training.distill={teachers: [runs/a]}"])
    assert load_config(None, ["training.distill={teachers: [runs/a], weight: 0.5}"]).training.distill["weight"] == 0.5


def test_a_fold_gets_its_own_teacher_and_never_one_that_heard_its_test_actors(tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "emobox-2" / "best")
    assert teacher_folders((str(run),), "emobox-2") == [run / "emobox-2" / "best"]
    with pytest.raises(FileNotFoundError, match="never heard its test actors"):
        teacher_folders((str(run),), "emobox-3")
    with pytest.raises(FileNotFoundError, match="never heard"):  # a model trained on everyone, under a protocol
        teacher_folders((str(tiny_model),), "emobox-2")
    assert teacher_folders((str(tiny_model),), None) == [tiny_model]  # a final model: any model folder
    with pytest.raises(FileNotFoundError, match="not a model"):
        teacher_folders((str(run),), None)


def test_loss_is_zero_at_the_teachers_answer_and_pulls_towards_it():
    torch.manual_seed(0)
    teacher = torch.randn(6, 8)
    soft = torch.softmax(teacher / 2.0, dim=1)
    assert distillation_loss(teacher, soft, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(6, 8, requires_grad=True)
    loss = distillation_loss(student, soft, 2.0)
    assert loss.item() > 0
    loss.backward()
    # a gradient step raises the student's logit where the teacher's probability is above uniform
    assert torch.equal(torch.sign(-student.grad), torch.sign(soft - 1 / 8))


def test_soft_targets_are_the_teachers_mean_probabilities_from_their_own_features(tiny_model, tiny_config, tmp_path):
    data = load_dataset(tiny_config, progress=False)
    part = data.subset(list(range(6)))
    bundle = load_bundle(tiny_model)
    ensemble = save_ensemble({"a": bundle, "b": bundle}, tmp_path / "ens")
    soft = soft_targets([ensemble], part, bundle.labels, 3.0, cache_dir=tiny_config.data.cache_dir, progress=False)
    clf = ClipClassifier(bundle.model, bundle.pipeline, labels=bundle.labels)
    logits, weights, owner = window_logits(clf, part.images, part.bounds)  # the cached features: the same audio
    expected = clip_probabilities(logits, weights, 3.0, owner, len(part))
    assert soft.shape == (6, len(bundle.labels))
    torch.testing.assert_close(soft, expected.float(), atol=1e-5, rtol=1e-4)
    other = bundle.labels[::-1]
    with pytest.raises(ValueError, match="must match"):
        soft_targets([tiny_model], part, other, 3.0, cache_dir=tiny_config.data.cache_dir, progress=False)


def test_a_student_trains_on_its_teachers_targets(tiny_model, tiny_config, tmp_path):
    cfg = tiny_config.merged({"training": {"epochs": 2, "distill": {"teachers": [str(tiny_model)], "weight": 0.5}}})
    data = load_dataset(cfg, progress=False)
    tr = data.subset([i for i, u in enumerate(data.utterances) if u.speaker != "03"])
    va = data.subset([i for i, u in enumerate(data.utterances) if u.speaker == "03"])
    result = train(cfg, tmp_path / "student", tr, va, progress=False)
    provenance = json.loads((tmp_path / "student" / "best" / "config.json").read_text())["provenance"]
    assert provenance["teachers"] == [str(tiny_model)]
    assert 0 <= provenance["teacher_train_accuracy"] <= 1
    assert np.isfinite([r["train_loss"] for r in result.history]).all()
    # the same run without a teacher follows another loss
    plain = train(tiny_config.merged({"training": {"epochs": 2}}), tmp_path / "plain", tr, va, progress=False)
    assert plain.history[0]["train_loss"] != pytest.approx(result.history[0]["train_loss"])
