"""model.pooling: the mean and standard deviation over time (optionally attention-weighted) instead of one average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox import Recognizer
from emovox.config import load_config
from emovox.inference.export import export_onnx
from emovox.models.folder import load_bundle, new_bundle, save_bundle
from emovox.models.resnet import StatsPooling, resnet18

from .conftest import SPEECH


def test_stats_pooling_is_the_mean_and_std_over_time_of_the_frequency_average():
    x = torch.randn(3, 4, 2, 5, generator=torch.Generator().manual_seed(0))
    h = x.mean(2)
    out = StatsPooling(4)(x)
    torch.testing.assert_close(out, torch.cat([h.mean(-1), h.std(-1, unbiased=False)], 1))


def test_attention_weights_sum_to_one_and_a_peaked_score_picks_one_step():
    pool = StatsPooling(4, attention=True)
    x = torch.randn(2, 4, 2, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # a score that prefers the last time step by far: mean = that step, std ~ 0
        last = pool.score[2]
        last.weight.zero_()
        pool.score[0].weight.zero_()
        pool.score[0].bias.zero_()
        bias = torch.zeros(1)
        last.bias.copy_(bias)
        uniform = pool(x)
    torch.testing.assert_close(uniform, StatsPooling(4)(x))  # a flat score is plain statistics pooling

    class Last(torch.nn.Module):  # a score of +50 on the last step only
        def forward(self, h):
            s = torch.zeros_like(h[:, :1])
            s[..., -1] = 50.0
            return s

    pool.score = Last()
    out = pool(x)
    torch.testing.assert_close(out[:, :4], x.mean(2)[..., -1])
    assert out[:, 4:].max() < 1e-2


@pytest.mark.parametrize("pooling", ["stats", "attention"])
def test_a_pooled_network_doubles_its_embedding_and_trains(pooling):
    model = resnet18(num_classes=8, width=8, pooling=pooling)
    assert model.fc.in_features == 2 * 64
    x = torch.randn(4, 1, 40, 156, generator=torch.Generator().manual_seed(2))
    out = model(x)
    assert out.shape == (4, 8)
    out.sum().backward()
    assert model.conv1.weight.grad.abs().sum() > 0
    if pooling == "attention":
        assert model.pool.score[0].weight.grad.abs().sum() > 0


def test_an_unknown_pooling_is_refused_by_the_model_and_the_config():
    with pytest.raises(ValueError, match="pooling must be one of"):
        resnet18(pooling="max")
    with pytest.raises(ValueError, match="model.pooling must be one of"):
        load_config(None, ["model.pooling=max"])


def test_a_model_folder_with_an_unknown_or_misplaced_pooling_is_refused(tmp_path):
    import json

    from emovox.models.folder import ModelFolderError

    torch.manual_seed(0)
    folder = save_bundle(new_bundle(load_config(None, []).preprocessing, "resnet18", width=8), tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    for model in ({**cfg["model"], "pooling": "max"}, {"name": "functionals", "pooling": "stats"}):
        (folder / "config.json").write_text(json.dumps({**cfg, "model": model}))
        with pytest.raises(ModelFolderError, match="pooling must be one of"):
            load_bundle(folder)


def test_the_default_pooling_leaves_model_folders_as_they_were():
    assert "pooling" not in load_config(None, []).model.options  # earlier folders' config.json unchanged
    assert load_config(None, ["model.pooling=attention"]).model.options["pooling"] == "attention"


@pytest.mark.parametrize("pooling", ["stats", "attention"])
def test_a_pooled_model_saves_loads_and_exports_to_onnx_alike(tiny_config, tmp_path, pooling):
    cfg = tiny_config.override(f"model.pooling={pooling}")
    torch.manual_seed(0)
    bundle = new_bundle(cfg.preprocessing, cfg.model.name, **cfg.model.options)
    folder = save_bundle(bundle, tmp_path / "model")
    assert load_bundle(folder).model_options["pooling"] == pooling
    onnx_path = export_onnx(folder, tmp_path / "model.onnx")
    clip = SPEECH / "Actor_09" / "03-01-05-02-01-01-09.flac"
    a = Recognizer.load(folder, threads=2).predict(clip)
    b = Recognizer.load(onnx_path, threads=2).predict(clip)
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
