"""ResNet18: shapes, torchvision weight loading, model folders (safetensors, no pickle)."""

from __future__ import annotations

import json

import pytest
import torch

from emovox.models import ResNet, load_bundle, load_torchvision_weights, resnet18, save_bundle
from emovox.models.folder import new_bundle
from emovox.pipeline import Pipeline


def test_resnet18_one_channel_in_eight_out():
    model = resnet18(num_classes=8, in_channels=1, width=16).eval()
    assert model.conv1.in_channels == 1 and model.fc.out_features == 8
    assert model(torch.randn(2, 1, 64, 157)).shape == (2, 8)
    assert model(torch.randn(1, 1, 64, 40)).shape == (1, 8)  # any width: global pooling
    n_convs = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1) for m in model.modules())
    assert n_convs + 1 == 18  # 17 convolutions + the classifier: ResNet18


def test_loads_torchvision_state_dict(tmp_path):
    torch.manual_seed(0)
    # a state dict with torchvision's names and shapes (3-channel stem, 1000 ImageNet classes)
    imagenet = ResNet((2, 2, 2, 2), num_classes=1000, in_channels=3, width=64).state_dict()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet, path)
    model = resnet18(num_classes=8, in_channels=1, width=64)
    missing = load_torchvision_weights(model, path)
    assert missing == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.conv1.weight, imagenet["conv1.weight"].mean(1, keepdim=True))
    torch.testing.assert_close(model.layer3[1].conv2.weight, imagenet["layer3.1.conv2.weight"])
    torch.testing.assert_close(model.bn1.running_var, imagenet["bn1.running_var"])
    with pytest.raises(ValueError, match="shapes do not match"):
        load_torchvision_weights(resnet18(width=32), path)


def test_bundle_round_trip_float32_and_float16(tmp_path):
    torch.manual_seed(0)
    bundle = new_bundle(Pipeline(), "resnet18", width=8)
    bundle.extra = {"provenance": {"note": "test"}}
    bundle.model.eval()
    x = torch.randn(2, 1, 64, 100)
    ref = bundle.model(x)
    back = load_bundle(save_bundle(bundle, tmp_path / "fp32"))
    torch.testing.assert_close(back.model(x), ref)
    assert back.pipeline == bundle.pipeline and back.model_options == {"width": 8}
    assert back.extra["provenance"]["note"] == "test"
    half = load_bundle(save_bundle(bundle, tmp_path / "fp16", half=True))
    torch.testing.assert_close(half.model(x), ref, atol=2e-2, rtol=2e-2)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "fp32" / "model.safetensors").stat().st_size
    cfg = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert cfg["labels"][0] == "neutral" and cfg["model"] == {"name": "resnet18", "width": 8}


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an emovox model folder"):
        load_bundle(tmp_path)
