"""Confidence that means what it says: temperature scaling (Guo et al. 2017) and its check.

A clip's probabilities are the weighted mean of its windows' ``softmax(logits / T)``. One
scalar ``T`` is fitted on the validation actors' clips by minimising the negative
log-likelihood; it never changes a window's top emotion. The expected calibration error
(ECE: the gap between confidence and accuracy, averaged over confidence bins) is reported
before and after.
"""

from __future__ import annotations

import numpy as np
import torch

from . import pipeline

T_RANGE = (0.05, 20.0)


def clip_probabilities(logits: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, n_clips: int,
                       temperature: float = 1.0) -> np.ndarray:
    """Window logits ``[W, C]`` (with each window's weight and clip index) → clip probabilities
    ``[n_clips, C]`` at ``temperature``: :class:`ClipClassifier`'s computation, in float64."""
    return pipeline.clip_probabilities(logits.double(), weights.double(), temperature, owner, n_clips).numpy()


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def ensemble_probabilities(members: list[tuple], n_clips: int, temperature: float = 1.0) -> np.ndarray:
    """The mean of several models' clip probabilities, each model given as its
    ``(window logits, weights, owner)`` and all at one shared ``temperature``."""
    return pipeline.ensemble_mean([clip_probabilities(*m, n_clips, temperature) for m in members])


def _answers(members: list[tuple], n_clips: int, temperature: float, speakers=None) -> np.ndarray:
    """The clips' answers at ``temperature``; with ``speakers``, each judged against its speaker's
    mean answer (the speaker-adaptive answer, :func:`emovox.adaptation.centre_by_speaker`)."""
    probs = ensemble_probabilities(members, n_clips, temperature)
    if speakers is None:
        return probs
    from .adaptation import centre_by_speaker

    return centre_by_speaker(probs, speakers).astype(np.float64)


def fit_temperature(logits, weights, owner, labels: np.ndarray, speakers=None) -> float:
    """The ``T`` in :data:`T_RANGE` minimising the clips' NLL (bounded scalar search on log T).
    ``logits``, ``weights`` and ``owner`` may be lists (one entry per ensemble member): one
    temperature shared by the members is then fitted on the ensemble's averaged probabilities.
    ``speakers`` (each clip's): the NLL of the speaker-adaptive answers instead (models trained
    to be read that way: ``training.speaker_groups``)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("calibration needs at least one labelled clip")
    members = list(zip(logits, weights, owner)) if isinstance(logits, (list, tuple)) else [(logits, weights, owner)]

    def nll(log_t: float) -> float:
        return negative_log_likelihood(_answers(members, len(labels), float(np.exp(log_t)), speakers), labels)

    res = minimize_scalar(nll, bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: sum over bins of
    (clips in bin / all clips) × |accuracy in bin − mean confidence in bin|."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def calibrate(logits: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, labels: np.ndarray,
              speakers=None) -> dict:
    """Fit ``T`` and report NLL and ECE before and after: the ``calibration`` entry of a model config
    (``speakers``: of the speaker-adaptive answers, see :func:`fit_temperature`)."""
    labels = np.asarray(labels)
    t = fit_temperature(logits, weights, owner, labels, speakers)
    members = [(logits, weights, owner)]
    before = _answers(members, len(labels), 1.0, speakers)
    after = _answers(members, len(labels), t, speakers)
    return {"temperature": round(t, 4),
            "fitted_on": f"{len(labels)} validation clips" + (", speaker-adaptive answers" if speakers is not None else ""),
            "ece_before": round(expected_calibration_error(before, labels), 4),
            "ece_after": round(expected_calibration_error(after, labels), 4),
            "nll_before": round(negative_log_likelihood(before, labels), 4),
            "nll_after": round(negative_log_likelihood(after, labels), 4)}


def held_out_calibration(logits, weights, owner, labels: np.ndarray, temperature: float) -> dict:
    """ECE of held-out clips at T = 1 and at a ``temperature`` fitted elsewhere."""
    labels = np.asarray(labels)
    return {"temperature": float(temperature),
            "test_ece_before": expected_calibration_error(clip_probabilities(logits, weights, owner, len(labels)), labels),
            "test_ece_after": expected_calibration_error(
                clip_probabilities(logits, weights, owner, len(labels), temperature), labels)}
