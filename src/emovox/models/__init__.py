from .folder import ModelBundle, is_ensemble, load_bundle, load_members, save_bundle, save_ensemble
from .registry import MODELS, build_model
from .resnet import ResNet, load_torchvision_weights, resnet18

__all__ = ["MODELS", "ModelBundle", "ResNet", "build_model", "is_ensemble", "load_bundle", "load_members",
           "load_torchvision_weights", "resnet18", "save_bundle", "save_ensemble"]
