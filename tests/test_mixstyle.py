"""training.mixstyle: per-channel statistics blended between clips in the early stages, training only."""

from __future__ import annotations

import pytest
import torch

from emovox.config import load_config
from emovox.models.resnet import resnet18
from emovox.training.mixstyle import MixStyle, mix_styles


def _maps(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 5, 7, generator=g) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1) + 2.0


def test_a_clip_keeps_its_style_at_weight_one_and_takes_its_partners_at_zero():
    x = _maps()
    perm = torch.tensor([1, 2, 3, 0])
    torch.testing.assert_close(mix_styles(x, perm, torch.ones(4)), x, atol=1e-4, rtol=1e-4)
    y = mix_styles(x, perm, torch.zeros(4))
    torch.testing.assert_close(y.mean(dim=(2, 3)), x.mean(dim=(2, 3))[perm], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y.std(dim=(2, 3)), x.std(dim=(2, 3))[perm], atol=1e-3, rtol=1e-3)
    # the content (the normalised pattern) is the clip's own
    norm = lambda t: (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True)  # noqa: E731
    torch.testing.assert_close(norm(y), norm(x), atol=1e-3, rtol=1e-3)


def test_the_hooks_mix_in_training_mode_only_and_come_off():
    torch.manual_seed(0)
    model = resnet18(num_classes=8, width=8)
    x = torch.randn(6, 1, 40, 64, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        plain_eval = model(x)
    mix = MixStyle(model, p=1.0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain_eval)  # evaluation sees the plain network
        model.train()
        torch.manual_seed(3)
        mixed = model(x)
        mix.remove()
        torch.manual_seed(3)
        plain_train = model(x)
    assert not torch.allclose(mixed, plain_train, atol=1e-4)


def test_a_chance_of_zero_never_mixes():
    torch.manual_seed(0)
    model = resnet18(num_classes=8, width=8).train()
    x = torch.randn(6, 1, 40, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(x)
        MixStyle(model, p=0.0)
        torch.testing.assert_close(model(x), plain)


@pytest.mark.parametrize("overrides, message", [
    (["training.mixstyle=1.5"], "a chance in"),
    (["training.mixstyle=0.5", "model.name=functionals", "preprocessing.features.normalize=none"], "resnet18"),
])
def test_mixstyle_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_a_run_with_mixstyle_mixes_and_saves_the_plain_network(tiny_config, tmp_path, monkeypatch):
    from emovox.models.folder import load_bundle
    from emovox.training.trainer import bundle_from

    from .conftest import train_tiny

    mixed = []
    draw = MixStyle._draw

    def counted(self, module, inputs):
        draw(self, module, inputs)
        mixed.append(self._active)

    monkeypatch.setattr(MixStyle, "_draw", counted)
    cfg = tiny_config.override("training.mixstyle=1.0", "training.epochs=1")
    data, result = train_tiny(cfg, tmp_path / "run")
    assert any(mixed) and not all(mixed)  # every training batch mixed, no validation pass
    assert len(result.history) == 1
    saved = load_bundle(tmp_path / "run" / "best").model
    assert saved.state_dict().keys() == bundle_from(cfg, data.label_names).model.state_dict().keys()


def test_freq_mixstyle_trades_each_bins_mean_and_spread_between_clips():
    from emovox.training.mixstyle import mix_styles as mix

    x = _maps(2)  # [B, C, F, T]: per-bin statistics over channels and time
    perm = torch.tensor([3, 2, 1, 0])
    y = mix(x.transpose(1, 2), perm, torch.zeros(4)).transpose(1, 2)
    torch.testing.assert_close(y.mean(dim=(1, 3)), x.mean(dim=(1, 3))[perm], atol=1e-4, rtol=1e-4)


def test_freq_mixstyle_mixes_the_input_in_training_mode_only_even_through_embed():
    torch.manual_seed(0)
    model = resnet18(num_classes=8, width=8)
    x = torch.randn(6, 1, 40, 64, generator=torch.Generator().manual_seed(1)) * 3 + 1
    seen = []
    MixStyle(model, p=1.0, on="bins")
    model.conv1.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))  # runs after the mixing hook
    with torch.no_grad():
        model.eval()
        model.embed(x)
        model.train()
        torch.manual_seed(3)
        model.embed(x)
    torch.testing.assert_close(seen[0], x)
    assert not torch.allclose(seen[1], x, atol=1e-3)
    with pytest.raises(ValueError, match="mixstyle_on must be one of"):
        load_config(None, ["training.mixstyle=0.5", "training.mixstyle_on=time"])
