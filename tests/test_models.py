"""ResNet18: shapes, torchvision weight loading, model folders (safetensors, no pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emovox.models import ResNet, load_bundle, load_torchvision_weights, resnet18, save_bundle
from emovox.models.folder import new_bundle
from emovox.pipeline import Preprocessing


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
    bundle = new_bundle(Preprocessing(), "resnet18", width=8)
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


# ---------------------------------------------------------------- hostile model folders


def _bundled_member(tmp_path, name="mfcc"):
    """A copy of the bundled model's first network, as ``tmp_path/name``."""
    import shutil

    from emovox.inference.recognizer import BUNDLED_MODEL
    from emovox.models.folder import member_folders

    first = member_folders(BUNDLED_MODEL)[0]
    return Path(shutil.copytree(first, tmp_path / name, ignore=shutil.ignore_patterns("*.onnx", "MODEL_CARD.md")))


def _edit_config(folder, change):
    import json

    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("labels"), "missing labels"),
    (lambda c: c.update(labels="angry"), "'labels' must be a list"),
    (lambda c: c["model"].update(width=10**9), "width must be an integer"),
    (lambda c: c["model"].update(width=16), "of another shape"),
    (lambda c: c.update(labels=c["labels"][:4]), r"fc\.bias: \[8\] in the file, \[4\] for the config"),
    (lambda c: c["model"].update(name="resnet50"), "unknown model"),
    (lambda c: c["model"].update(depth=3), "cannot build model"),
    (lambda c: c["preprocessing"]["features"].update(n_fft=2**40), "'n_fft' must be in"),
    (lambda c: c["preprocessing"]["features"].update(hop_length=0), "'hop_length' must be a positive integer"),
    (lambda c: c["preprocessing"]["features"].update(kind="wavelet"), "unknown feature kind"),
    (lambda c: c.update(calibration={"temperature": -1}), "positive 'temperature'"),
])
def test_a_config_that_does_not_match_is_refused(tmp_path, change, message):
    from emovox.models.folder import ModelFolderError, load_bundle

    folder = _bundled_member(tmp_path)
    _edit_config(folder, change)
    with pytest.raises((ModelFolderError, ValueError), match=message):
        load_bundle(folder)


def test_weights_that_are_not_safetensors_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    import pickle

    from emovox.models.folder import ModelFolderError, load_bundle

    folder = _bundled_member(tmp_path)
    real = load_bundle(folder).model.state_dict()
    weights = folder / "model.safetensors"

    def no_unpickling(*a, **k):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    torch.save(real, weights)  # a torch.save zip (pickle inside) named model.safetensors
    with pytest.raises(ModelFolderError, match="pickle / torch.save file, not safetensors"):
        load_bundle(folder)
    weights.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(ModelFolderError, match="never unpickles"):
        load_bundle(folder)
    for junk in (b"", b"\x01\x02", b"\xff" * 8 + b"{}", (2).to_bytes(8, "little") + b"[]"):
        weights.write_bytes(junk)
        with pytest.raises(ModelFolderError):
            load_bundle(folder)
    from safetensors.torch import save_file

    save_file({k: v for k, v in real.items() if k != "fc.bias"}, str(weights))
    with pytest.raises(ModelFolderError, match=r"1 missing \(fc\.bias\)"):
        load_bundle(folder)
    save_file({**real, "extra.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(ModelFolderError, match=r"1 unexpected \(extra\.weight\)"):
        load_bundle(folder)
    bad = dict(real)
    bad["fc.bias"] = torch.full_like(real["fc.bias"], float("nan"))
    save_file(bad, str(weights))
    with pytest.raises(ModelFolderError, match="NaN or infinite values in fc.bias"):
        load_bundle(folder)
    full = weights.read_bytes()
    weights.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelFolderError, match="damaged"):
        load_bundle(folder)


@pytest.mark.parametrize("members", [["../mfcc"], ["/etc"], ["a/../../mfcc"], ["..\\mfcc"], [], "mfcc", [1], ["."],
                                     ["mfcc", "mfcc"]])
def test_an_ensemble_naming_folders_outside_itself_is_refused(tmp_path, members):
    import json

    from emovox.models.folder import ENSEMBLE_FORMAT, ModelFolderError, load_members

    _bundled_member(tmp_path)  # tmp_path/mfcc: a real model right beside the ensemble
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "config.json").write_text(json.dumps({"format": ENSEMBLE_FORMAT, "labels": ["a"], "members": members}))
    with pytest.raises(ModelFolderError, match="members|member"):
        load_members(ens)


def test_a_link_leading_out_of_the_ensemble_is_refused(tmp_path):
    import json

    from emovox.models.folder import ENSEMBLE_FORMAT, ModelFolderError, load_members

    _bundled_member(tmp_path)
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "m").symlink_to(tmp_path / "mfcc")
    (ens / "config.json").write_text(json.dumps({"format": ENSEMBLE_FORMAT, "labels": ["a"], "members": ["m"]}))
    with pytest.raises(ModelFolderError, match="leads outside"):
        load_members(ens)


def test_config_json_that_is_not_json_is_refused(tmp_path):
    from emovox.models.folder import ModelFolderError, load_members

    folder = _bundled_member(tmp_path)
    for text in (b"{", b"\xff\xfe", b"[1, 2]", b'{"labels": NaN}', b"[" * 100_000):
        (folder / "config.json").write_bytes(text)
        with pytest.raises(ModelFolderError):
            load_members(folder)
