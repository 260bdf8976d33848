"""Model names → constructors, so a config (or a model folder) can name its network."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .functionals import functionals_model
from .resnet import resnet18

MODELS: dict[str, Callable[..., nn.Module]] = {"resnet18": resnet18, "functionals": functionals_model}


def build_model(name: str, num_classes: int, in_channels: int, **options) -> nn.Module:
    """Instantiate a registered model; ``options`` are its size settings (e.g. ``width``)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    return factory(num_classes=num_classes, in_channels=in_channels, **options)
