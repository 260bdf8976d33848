"""Grad-CAM explanations: shapes, alignment with the feature image, targets, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from emovox import audio
from emovox.cli import main
from emovox.inference import Recognizer

from .conftest import tiny_files


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer.load(tiny_model, threads=2)


def test_map_lines_up_with_the_feature_image(rec):
    wave = audio.load(tiny_files()[4])
    expl = rec.explain(wave, 16_000)
    pipe = rec.backend.bundle.pipeline
    db, (first, end) = pipe.analyse(wave)
    assert expl.image.shape == expl.heat.shape == tuple(db.shape)
    np.testing.assert_allclose(expl.image, db.numpy())
    assert expl.heat.min() >= 0 and expl.heat.max() == pytest.approx(1.0)
    assert expl.voiced == (first, end)
    # nothing outside the prediction windows can matter
    starts = max(0, first - pipe.clip_frames)
    assert not expl.heat[:, :starts].any()
    # the explained probabilities are predict()'s
    pred = rec.predict(wave, 16_000)
    assert expl.label == pred.label
    assert expl.probabilities == pytest.approx(pred.probabilities, abs=1e-5)
    assert expl.hop_seconds == pytest.approx(256 / 16_000) and expl.kind == "mel" and expl.stage == 4


def test_targets_and_stages(rec):
    wave = audio.load(tiny_files()[2])
    sad = rec.explain(wave, 16_000, target="sad")
    assert sad.label == "sad"
    fine = rec.explain(wave, 16_000, stage=2)
    assert fine.stage == 2 and fine.heat.shape == sad.heat.shape
    with pytest.raises(ValueError, match="unknown emotion"):
        rec.explain(wave, 16_000, target="bored")
    with pytest.raises(ValueError, match="stage"):
        rec.explain(wave, 16_000, stage=7)


def test_explain_needs_the_torch_backend(tiny_model, tmp_path):
    import shutil

    from emovox.inference.export import export_onnx

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    export_onnx(folder, folder / "model.onnx")
    with pytest.raises(ValueError, match="gradients"):
        Recognizer.load(folder, backend="onnx").explain(tiny_files()[0])


def test_cli_explain_writes_a_figure(tiny_model, tmp_path, capsys):
    out = tmp_path / "why.png"
    assert main(["explain", str(tiny_files()[5]), "--model", str(tiny_model), "-o", str(out)]) == 0
    assert out.stat().st_size > 20_000 and "wrote" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "missing.wav"), "--model", str(tiny_model), "-o", str(out)]) == 2
