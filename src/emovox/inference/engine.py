"""Clips → class probabilities, batched: the forward pass shared by validation, evaluation and
the Recognizer. It runs the same pieces as :class:`emovox.pipeline.ClipClassifier` (one clip
at a time, the exported graph) but packs the windows of many clips into each batch."""

from __future__ import annotations

import numpy as np
import torch

from ..pipeline import ClipClassifier, clip_windows, weighted_mean


def predict_clips(
    classifier: ClipClassifier,
    images: list[torch.Tensor],
    bounds: list[tuple[int, int]],
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Probabilities ``[n_clips, n_classes]`` of dB images with their voiced ``(first, end)``:
    the weighted mean of each clip's window probabilities."""
    n_classes = classifier.model.fc.out_features
    if not images:
        return np.zeros((0, n_classes), dtype=np.float32)
    windows, weights, owner = [], [], []
    for i, (db, (first, end)) in enumerate(zip(images, bounds)):
        w, wt = clip_windows(db, first, end, classifier.pipeline)
        keep = wt > 0  # skip the zero-weight candidates: same result, less work
        windows.append(w[keep])
        weights.append(wt[keep])
        owner.append(torch.full((int(keep.sum()),), i))
    windows, weights, owner = torch.cat(windows), torch.cat(weights), torch.cat(owner)
    was_training = classifier.training
    classifier.eval()
    with torch.inference_mode():
        probs = torch.cat([classifier.window_probabilities(windows[s:s + batch_size])
                           for s in range(0, len(windows), batch_size)])
    classifier.train(was_training)
    return weighted_mean(probs, weights, owner, len(images)).numpy()
