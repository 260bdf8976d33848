"""Gradient reversal, for speaker-adversarial training: an embedding that does not tell the
training speakers apart (the head itself: :class:`.heads.TrainingHeads`).

A network trained on 20 actors can learn who is speaking as a shortcut to how they sound when
angry; on a voice it never heard the shortcut misleads it. Domain-adversarial training (Ganin &
Lempitsky 2015, "gradient reversal") adds a head that guesses the training speaker from the
pooled embedding; the head learns to guess, while the reversed gradient (× ``weight``) teaches
the network to make its embedding useless for guessing.
"""

from __future__ import annotations

import torch


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight: float):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``x`` forward; its gradient times ``-weight`` backward."""
    return _Reverse.apply(x, weight)
