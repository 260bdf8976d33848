"""Temperature scaling and ECE: the maths, and that a trained model carries its temperature."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emovox.calibration import (calibrate, clip_probabilities, expected_calibration_error, fit_temperature,
                                negative_log_likelihood)
from emovox.cli import main
from emovox.inference import Recognizer

from .conftest import tiny_files


def test_ece_by_hand():
    # two bins used: conf 0.9 (2 clips, 1 right: acc 0.5) and conf 0.6 (2 clips, both right: acc 1)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def _overconfident(n=3000, scale=3.0, seed=0):
    """Labels drawn from softmax(z); the 'model' reports scale × z (one window per clip)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 8))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(8, p=row) for row in p])
    return torch.tensor(scale * z, dtype=torch.float32), torch.ones(n), torch.arange(n), labels


def test_fitted_temperature_undoes_overconfidence():
    logits, weights, owner, labels = _overconfident(scale=3.0)
    t = fit_temperature(logits, weights, owner, labels)
    assert t == pytest.approx(3.0, rel=0.12)
    report = calibrate(logits, weights, owner, labels)
    assert report["ece_after"] < report["ece_before"] / 2
    assert report["nll_after"] < report["nll_before"]
    # an already calibrated model keeps T near 1
    logits1, *_ = _overconfident(scale=1.0)
    assert fit_temperature(logits1, weights, owner, labels) == pytest.approx(1.0, rel=0.12)


def test_temperature_keeps_a_single_window_argmax_and_averages_windows():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    weights, owner = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 1])
    p1 = clip_probabilities(logits, weights, owner, 2, 1.0)
    p3 = clip_probabilities(logits, weights, owner, 2, 3.0)
    assert p1.shape == (2, 3) and np.allclose(p1.sum(1), 1) and np.allclose(p3.sum(1), 1)
    assert p1[1].argmax() == p3[1].argmax() == 2 and p3[1].max() < p1[1].max()  # softer, same answer
    expected0 = (torch.softmax(logits[0], 0) + torch.softmax(logits[1], 0)).numpy() / 2
    np.testing.assert_allclose(p1[0], expected0, rtol=1e-6)
    assert negative_log_likelihood(p1, np.array([0, 2])) == pytest.approx(-np.log(p1[[0, 1], [0, 2]]).mean())
    with pytest.raises(ValueError):
        fit_temperature(logits, weights, owner, np.array([], dtype=int))


def test_trained_model_is_calibrated_on_validation_actors(tiny_model):
    cfg = json.loads((tiny_model / "config.json").read_text())
    cal = cfg["calibration"]
    assert 0.05 <= cal["temperature"] <= 20 and cal["fitted_on"] == "8 validation clips"
    assert cal["nll_after"] <= cal["nll_before"] + 1e-6
    rec = Recognizer.load(tiny_model)
    assert float(rec.backend.classifiers[0].temperature) == pytest.approx(cal["temperature"])


def test_min_confidence_marks_uncertain_answers(tiny_model, capsys):
    clip = tiny_files()[0]
    sure = Recognizer.load(tiny_model).predict(clip)
    unsure = Recognizer.load(tiny_model, min_confidence=0.999).predict(clip)
    assert not sure.uncertain and sure.answer == sure.label
    assert unsure.uncertain and unsure.answer == "uncertain" and unsure.label == sure.label
    assert unsure.to_dict()["uncertain"] is True
    assert main(["predict", str(clip), "--model", str(tiny_model), "--min-confidence", "0.999"]) == 0
    assert "uncertain" in capsys.readouterr().out
    with pytest.raises(ValueError, match="min_confidence"):
        Recognizer.load(tiny_model, min_confidence=1.5)
