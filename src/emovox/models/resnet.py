"""ResNet18 written out in the package (torchvision is not a run-time dependency).

Parameter names follow torchvision's ``resnet18`` so that a torchvision state-dict file a
user already has (e.g. ImageNet weights) loads with :func:`load_torchvision_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class StatsPooling(nn.Module):
    """The last maps averaged over frequency, then the mean and standard deviation of each channel
    over time (x-vector pooling, Snyder et al. 2018): how a voice varies, beside its average.
    ``attention``: the time steps weighted by a learned score (attentive statistics pooling, Okabe et
    al. 2018), so steps of padding or silence can count for little. Computed in float32 (the
    variance of bf16 values is too coarse)."""

    def __init__(self, channels: int, attention: bool = False, hidden: int = 64) -> None:
        super().__init__()
        self.score = None
        if attention:
            self.score = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float().mean(2)  # [B, C, T]
        if self.score is None:
            mean, var = h.mean(-1), h.var(-1, unbiased=False)
        else:
            w = torch.softmax(self.score(h).float(), dim=-1)  # [B, 1, T]
            mean = (h * w).sum(-1)
            var = ((h - mean.unsqueeze(-1)) ** 2 * w).sum(-1)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], 1)  # the floor keeps sqrt's gradient finite


#: how the last maps become one embedding: ``avg`` (torchvision's), ``stats``, ``attention``
POOLINGS = ("avg", "stats", "attention")


def check_pooling(pooling, model_name: str = "resnet18") -> None:
    """ValueError unless ``pooling`` is one of :data:`POOLINGS` and fits ``model_name`` (only
    resnet18 pools other than by one average)."""
    if pooling not in POOLINGS or (pooling != "avg" and model_name != "resnet18"):
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)} (other than avg: resnet18 only), "
                         f"not {pooling!r} for {model_name}")


class ResNet(nn.Module):
    """ResNet with a ``in_channels`` stem and a ``num_classes`` head.

    Parameters
    ----------
    layers : per-stage block counts, ``(2, 2, 2, 2)`` for ResNet18.
    num_classes : outputs of the last layer, one per emotion.
    in_channels : 1 for a single feature image (the recipe), 3 for stacked features.
    width : channels of the first stage (64 in torchvision); stages double it.
    dropout : dropout before the classifier.
    pooling : one of :data:`POOLINGS`: the average over frequency and time (``avg``, the recipe's),
        or the mean and standard deviation over time (``stats``; ``attention``: attention-weighted),
        which doubles the embedding.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 8,
        in_channels: int = 1,
        width: int = 64,
        dropout: float = 0.0,
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        check_pooling(pooling)
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes, in_planes = width, width
        for i, blocks in enumerate(layers):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(in_planes, planes, stride if b == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            planes *= 2
        self.n_stages = len(layers)
        if pooling == "avg":
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        else:
            self.pool = StatsPooling(in_planes, attention=pooling == "attention")
            in_planes *= 2
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # zero-init the last BN of each block: each block starts as identity (Goyal et al. 2017)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def stages(self) -> list[nn.Sequential]:
        """The stages (``layer1`` ...) in order: where Grad-CAM hooks in."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.n_stages)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps of the last stage, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding the classifier reads (what a speaker adversary sees)."""
        return self.pool(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


def resnet18(num_classes: int = 8, in_channels: int = 1, width: int = 64, dropout: float = 0.0,
             pooling: str = "avg") -> ResNet:
    """The recipe's network: ResNet18, one-channel stem, one output per emotion."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, width, dropout, pooling)


def load_torchvision_weights(model: ResNet, path: str | Path) -> list[str]:
    """Initialise ``model`` from a torchvision ResNet18 state-dict file (e.g. ImageNet).

    ``conv1`` is averaged over the RGB input channels (then repeated if the model takes more
    than one channel), which is how the original recipe adapted ImageNet weights to one-channel
    spectrograms. The classifier (``fc``) is left at its fresh initialisation because its size
    differs. Loading uses ``weights_only=True``: no arbitrary unpickling.

    Returns
    -------
    The names of the parameters that were *not* taken from the file.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    conv1 = state.get("conv1.weight")
    if conv1 is None:
        raise ValueError(f"{path}: not a ResNet state dict (no 'conv1.weight')")
    in_ch = own["conv1.weight"].shape[1]
    state = dict(state)
    state["conv1.weight"] = conv1.mean(dim=1, keepdim=True).repeat(1, in_ch, 1, 1)
    taken = {}
    for name, value in state.items():
        if name in own and own[name].shape == value.shape and not name.startswith("fc."):
            taken[name] = value
    if len(taken) < len(own) // 2:
        raise ValueError(f"{path}: shapes do not match this model (width or depth differ)")
    model.load_state_dict(taken, strict=False)
    return sorted(set(own) - set(taken))
