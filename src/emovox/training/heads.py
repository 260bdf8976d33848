"""Heads that train a network's embedding beside its emotion classifier (training only).

Both read the pooled embedding (:meth:`emovox.models.resnet.ResNet.embed`); neither is part of the
saved model, which predicts exactly as a network trained without them would.

- **Speaker adversary** (``training.speaker_adversary``): a head guesses the training speaker,
  behind a gradient reversal (:func:`.adversary.reverse_gradient`), so the embedding learns to be
  useless for telling the training speakers apart (Ganin & Lempitsky 2015).
- **Intensity** (``training.intensity_head``): a head guesses how strongly each clip is acted
  (RAVDESS's normal / strong), its loss added as it is (multi-task learning): the embedding is
  asked to carry arousal within an emotion, the axis a RAVDESS model misreads other corpora on.
  Clips whose corpus has no intensity (target -100) are left out of that loss.
"""

from __future__ import annotations

import torch
from torch import nn

from .adversary import reverse_gradient

#: the intensity head's classes, as :mod:`emovox.corpora.ravdess` names them
INTENSITIES = ("normal", "strong")
#: the target of a clip without an intensity (left out of the loss)
UNKNOWN = -100


def intensity_targets(utterances) -> torch.Tensor:
    """Each utterance's intensity as an index of :data:`INTENSITIES`, :data:`UNKNOWN` where it has none."""
    out = []
    for u in utterances:
        value = dict(u.extra).get("intensity")
        out.append(INTENSITIES.index(value) if value in INTENSITIES else UNKNOWN)
    return torch.tensor(out, dtype=torch.long)


def has_intensity(targets: torch.Tensor | None) -> bool:
    """Whether any of ``targets`` (:func:`intensity_targets`) is known."""
    return targets is not None and bool((targets != UNKNOWN).any())


def _head(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, n_out))


class TrainingHeads(nn.Module):
    """A network (with ``embed``, ``dropout`` and ``fc``: :class:`emovox.models.resnet.ResNet`) and
    its training heads: ``n_speakers`` and ``adversary`` for the speaker adversary (its reversal
    weight), ``intensity`` for the intensity head (its loss weight); 0 leaves a head out."""

    def __init__(self, model: nn.Module, *, n_speakers: int = 0, adversary: float = 0.0,
                 intensity: float = 0.0) -> None:
        super().__init__()
        if not hasattr(model, "embed"):
            raise ValueError(f"training.speaker_adversary and training.intensity_head need a network with an "
                             f"embedding (resnet), not {type(model).__name__}")
        if adversary and n_speakers < 2:
            raise ValueError("training.speaker_adversary needs at least 2 training speakers")
        self.model, self.adversary, self.intensity = model, float(adversary), float(intensity)
        width = model.fc.in_features
        self.speaker_head = _head(width, n_speakers) if adversary else None
        self.intensity_head = _head(width, len(INTENSITIES)) if intensity else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(emotion logits, {head name: logits})``."""
        emb = self.model.embed(x)
        out = {}
        if self.speaker_head is not None:
            out["speaker"] = self.speaker_head(reverse_gradient(emb, self.adversary))
        if self.intensity_head is not None:
            out["intensity"] = self.intensity_head(emb)
        return self.model.fc(self.model.dropout(emb)), out

    def loss(self, logits: dict[str, torch.Tensor], speakers: torch.Tensor | None,
             intensity: torch.Tensor | None) -> torch.Tensor:
        """The heads' losses summed: the speaker head's cross-entropy (its weight is in the reversal),
        the intensity head's × its weight over the clips that have one."""
        total = torch.zeros(())
        if "speaker" in logits:
            total = total + nn.functional.cross_entropy(logits["speaker"].float(), speakers)
        if "intensity" in logits and has_intensity(intensity):
            total = total + self.intensity * nn.functional.cross_entropy(
                logits["intensity"].float(), intensity, ignore_index=UNKNOWN)
        return total

    def head_state(self) -> dict:
        """The heads' weights alone (a checkpoint holds the network's separately)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}

    def load_head_state(self, state: dict) -> None:
        """The heads' weights from :meth:`head_state` (the network's are loaded on their own)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("model.")]
        if missing or unexpected:
            raise ValueError(f"the checkpoint's training heads do not match this run's: missing {missing}, "
                             f"unexpected {unexpected}")
