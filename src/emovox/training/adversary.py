"""Speaker-adversarial training: an embedding that does not tell the training speakers apart.

A network trained on 20 actors can learn who is speaking as a shortcut to how they sound when
angry; on a voice it never heard the shortcut misleads it. Domain-adversarial training (Ganin &
Lempitsky 2015, "gradient reversal") adds a head that guesses the training speaker from the
pooled embedding; the head learns to guess, while the reversed gradient (× ``weight``) teaches
the network to make its embedding useless for guessing. Training only: the head is not part of
the saved model, which predicts exactly as before.
"""

from __future__ import annotations

import torch
from torch import nn


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


class SpeakerAdversary(nn.Module):
    """A network (with ``embed`` and ``fc``/``dropout``: :class:`emovox.models.resnet.ResNet`) and
    a speaker head on its embedding, behind a gradient reversal of ``weight``."""

    def __init__(self, model: nn.Module, n_speakers: int, weight: float) -> None:
        super().__init__()
        if not hasattr(model, "embed"):
            raise ValueError(f"training.speaker_adversary needs a network with an embedding (resnet), "
                             f"not {type(model).__name__}")
        if n_speakers < 2:
            raise ValueError("training.speaker_adversary needs at least 2 training speakers")
        self.model, self.weight = model, float(weight)
        self.head = nn.Sequential(nn.Linear(model.fc.in_features, 128), nn.ReLU(), nn.Linear(128, n_speakers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(emotion logits, speaker logits)``."""
        emb = self.model.embed(x)
        return self.model.fc(self.model.dropout(emb)), self.head(reverse_gradient(emb, self.weight))
