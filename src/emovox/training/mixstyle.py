"""MixStyle (Zhou et al. 2021, "Domain generalization with MixStyle"): new speakers and channels
made from the ones in a batch, inside the network.

A convolution's early feature maps carry "style" in each channel's mean and spread over the
image (for a spectrogram CNN: the voice's and the microphone's colouring) and "content" in the
normalised pattern. During training, with chance ``p`` per batch, the maps after the first
stages are normalised per clip and channel and re-scaled with statistics blended between the
clip and another clip of the batch (weight ~ Beta(0.1, 0.1): mostly one or the other, sometimes
between). The network sees the same content in voices and channels no training clip had. The
hooks act only in training mode: evaluation, saving and export see the plain network. With
consistency training a batch holds each clip's augmented and clean views, and both are mixed
alike (partners drawn from either half): that is the combination the twelfth session measured.

``on="bins"`` is Freq-MixStyle (Kim et al. 2022, for devices never heard in acoustic scene
classification): the network's input is normalised per frequency bin (over time) instead, and
re-coloured with a blend of two clips' per-bin mean and spread — a microphone's and a voice's
average spectrum (for MFCC: the cepstral means a channel sets) traded between clips.
"""

from __future__ import annotations

import torch
from torch import nn

#: the Beta distribution's concentration (the paper's default)
ALPHA = 0.1
#: which stages' outputs are mixed (the paper: the early ones, where style lives)
STAGES = (0, 1)
#: where the statistics are mixed: after the early stages (per channel), or at the input (per frequency bin)
PLACES = ("stages", "bins")


def check_place(on) -> None:
    if on not in PLACES:
        raise ValueError(f"training.mixstyle_on must be one of {', '.join(PLACES)}, not {on!r}")


def mix_styles(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` with each clip's per-channel mean and spread replaced by ``lam`` ×
    its own + (1 - ``lam``) × clip ``perm``'s (``lam`` ``[B]``); statistics in float32, not
    back-propagated through (as in the paper)."""
    xf = x.float()
    mu = xf.mean(dim=(2, 3), keepdim=True).detach()
    sig = (xf.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    lam = lam.view(-1, 1, 1, 1).to(xf)
    mixed_mu = lam * mu + (1 - lam) * mu[perm]
    mixed_sig = lam * sig + (1 - lam) * sig[perm]
    return ((xf - mu) / sig * mixed_sig + mixed_mu).to(x.dtype)


class MixStyle:
    """Hooks on a ResNet that mix styles with chance ``p`` per batch in training mode: ``on``
    ``"stages"`` after its early stages (``model.stages()``), ``"bins"`` on its input per
    frequency bin; :meth:`remove` takes them off."""

    def __init__(self, model: nn.Module, p: float, on: str = "stages") -> None:
        if not hasattr(model, "stages"):
            raise ValueError(f"training.mixstyle mixes a ResNet's statistics, not {type(model).__name__}'s")
        check_place(on)
        self.p = float(p)
        self._beta = torch.distributions.Beta(ALPHA, ALPHA)
        self._active = False
        # every pass (forward or embed) starts at the stem: the one place a batch's draw is made
        self._handles = [model.conv1.register_forward_pre_hook(self._mix_input if on == "bins" else self._draw)]
        if on == "stages":
            stages = model.stages()
            self._handles += [stages[i].register_forward_hook(self._hook) for i in STAGES if i < len(stages)]

    def _mix_input(self, module, inputs):
        """``bins``: the input ``[B, C, F, T]`` seen as ``[B, F, C, T]``: statistics per bin over channels and time."""
        self._draw(module, inputs)
        if not self._active:
            return None
        x = inputs[0]
        return (mix_styles(x.transpose(1, 2), self._perm, self._lam).transpose(1, 2), *inputs[1:])

    def _draw(self, module, inputs):
        """Once per forward pass: mix this batch or not, and with whom (torch's generator: a
        resumed run draws as an uninterrupted one)."""
        x = inputs[0]
        self._active = module.training and x.shape[0] > 1 and float(torch.rand(())) < self.p
        if self._active:
            self._perm = torch.randperm(x.shape[0])
            self._lam = self._beta.sample((x.shape[0],))

    def _hook(self, module, inputs, output):
        if not (self._active and module.training):
            return output
        return mix_styles(output, self._perm, self._lam)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
