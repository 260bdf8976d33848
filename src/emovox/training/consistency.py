"""Consistency training: a clip's answer should not change when its audio is degraded.

Each training clip comes twice in a batch: a window of its clean recording and one of its
augmented audio (a room, a microphone, a codec...). Both views are classified in one forward
pass; the loss is the mean of their cross-entropies plus ``weight`` times the Jensen-Shannon
divergence between the two answers (AugMix, Hendrycks et al. 2020, weight 12 there). The
divergence pulls the answers on degraded audio towards the clean ones, which is the label
agreement the robustness benchmark measures, while the clean view keeps clean accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def js_divergence(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean Jensen-Shannon divergence (nats, at most ln 2) between two batches of answers."""
    p, q = logits_a.softmax(1), logits_b.softmax(1)
    log_m = ((p + q) / 2).clamp(1e-7, 1.0).log()
    return (F.kl_div(log_m, p, reduction="batchmean") + F.kl_div(log_m, q, reduction="batchmean")) / 2
