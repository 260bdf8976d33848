from .folder import ModelBundle, load_bundle, save_bundle
from .registry import MODELS, build_model
from .resnet import ResNet, load_torchvision_weights, resnet18

__all__ = ["MODELS", "ModelBundle", "ResNet", "build_model", "load_bundle", "load_torchvision_weights", "resnet18", "save_bundle"]
