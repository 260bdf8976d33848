"""Networks (ResNet18, utterance functionals, the registry) and the model-folder format.

Names load lazily: ``emovox.models.folder`` answers questions about a folder without torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "ModelBundle": "folder", "is_ensemble": "folder", "load_bundle": "folder", "load_members": "folder",
    "new_bundle": "folder", "save_bundle": "folder", "save_ensemble": "folder",
    "MODELS": "registry", "build_model": "registry",
    "FunctionalsClassifier": "functionals", "Reference": "functionals",
    "ResNet": "resnet", "load_torchvision_weights": "resnet", "resnet18": "resnet",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'emovox.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
