"""Clip images → class probabilities: the one forward pass shared by validation, evaluation
and the Recognizer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..pipeline import Pipeline


def predict_images(
    model: nn.Module,
    images: list[torch.Tensor],
    pipeline: Pipeline,
    *,
    batch_size: int = 64,
    temperature: float = 1.0,
) -> np.ndarray:
    """Probabilities ``[n_clips, n_classes]``: softmax averaged over each clip's windows."""
    if not images:
        return np.zeros((0, getattr(model, "fc").out_features), dtype=np.float32)
    windows = [pipeline.windows(img) for img in images]
    owner = torch.cat([torch.full((len(w),), i) for i, w in enumerate(windows)])
    stacked = torch.cat(windows)
    was_training = model.training
    model.eval()
    probs = []
    with torch.inference_mode():
        for start in range(0, len(stacked), batch_size):
            logits = model(stacked[start:start + batch_size].contiguous(memory_format=torch.channels_last))
            probs.append(torch.softmax(logits.float() / temperature, dim=-1))
    model.train(was_training)
    probs = torch.cat(probs)
    out = torch.zeros(len(images), probs.shape[1]).index_add_(0, owner, probs)
    counts = torch.bincount(owner, minlength=len(images)).unsqueeze(1)
    return (out / counts).numpy()
