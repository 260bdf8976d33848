"""Clips → class probabilities, batched: the forward pass shared by validation, evaluation and
the Recognizer. It runs the same pieces as :class:`emovox.pipeline.ClipClassifier` (one clip
at a time, the exported graph) but packs the windows of many clips into each batch."""

from __future__ import annotations

import numpy as np
import torch

from ..features import Stats
from ..pipeline import ClipClassifier, clip_windows, reference_stats, weighted_mean


def window_logits(
    classifier: ClipClassifier,
    images: list[torch.Tensor],
    bounds: list[tuple[int, int]],
    *,
    batch_size: int = 64,
    speakers: list[Stats | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits of every prediction window of the clips ``[W, n_classes]``, with each window's
    weight and clip index (for calibration, which needs them before the softmax).
    ``speakers``: each clip's speaker statistics (speaker-adaptive ``"bins"`` normalisation)."""
    n_classes = classifier.model.fc.out_features
    if not images:
        return torch.zeros(0, n_classes), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    windows, weights, owner, means, stds = [], [], [], [], []
    for i, (db, (first, end)) in enumerate(zip(images, bounds)):
        w, wt = clip_windows(db, first, end, classifier.pipeline)
        keep = wt > 0  # skip the zero-weight candidates: same result, less work
        ref = reference_stats(db, first, end, classifier.pipeline, speakers[i] if speakers else None)
        windows.append(w[keep])
        weights.append(wt[keep])
        owner.append(torch.full((int(keep.sum()),), i))
        means.append(ref.mean.reshape(1, -1).expand(int(keep.sum()), -1))
        stds.append(ref.std.reshape(1).expand(int(keep.sum())))
    windows, weights, owner = torch.cat(windows), torch.cat(weights), torch.cat(owner)
    means, stds = torch.cat(means), torch.cat(stds)
    was_training = classifier.training
    classifier.eval()
    with torch.inference_mode():
        logits = torch.cat([classifier.window_logits(windows[s:s + batch_size],
                                                     Stats(means[s:s + batch_size], stds[s:s + batch_size]))
                            for s in range(0, len(windows), batch_size)])
    classifier.train(was_training)
    return logits, weights, owner


def predict_clips(
    classifier: ClipClassifier,
    images: list[torch.Tensor],
    bounds: list[tuple[int, int]],
    *,
    batch_size: int = 64,
    speakers: list[Stats | None] | None = None,
) -> np.ndarray:
    """Probabilities ``[n_clips, n_classes]`` of dB images with their voiced ``(first, end)``:
    the weighted mean of each clip's window probabilities."""
    logits, weights, owner = window_logits(classifier, images, bounds, batch_size=batch_size, speakers=speakers)
    if not images:
        return logits.numpy()
    probs = torch.softmax(logits / classifier.temperature, dim=-1)
    return weighted_mean(probs, weights, owner, len(images)).numpy()
