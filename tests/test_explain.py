"""Grad-CAM explanations: shapes, alignment with the feature image, targets, ensembles, CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from emovox import EMOTIONS, audio
from emovox.cli import main
from emovox.inference import Recognizer

from .conftest import tiny_files


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer.load(tiny_model, threads=2)


def test_map_lines_up_with_the_feature_image(rec):
    wave = audio.load(tiny_files()[4])
    expl = rec.explain(wave, 16_000)
    (m,) = expl.maps
    pipe = rec.backend.bundle.pipeline
    db, (first, end) = pipe.analyse(wave)
    assert m.image.shape == m.heat.shape == tuple(db.shape)
    np.testing.assert_allclose(m.image, db.numpy())
    assert m.heat.min() >= 0 and m.heat.max() == pytest.approx(1.0)
    assert m.voiced == (first, end)
    # nothing outside the prediction windows can matter
    starts = max(0, first - pipe.clip_frames)
    assert not m.heat[:, :starts].any()
    # the explained probabilities are predict()'s
    pred = rec.predict(wave, 16_000)
    assert expl.label == pred.label
    assert expl.probabilities == pred.probabilities
    assert m.hop_seconds == pytest.approx(256 / 16_000) and m.kind == "mel" and expl.stage == 4


def test_targets_and_stages(rec):
    wave = audio.load(tiny_files()[2])
    sad = rec.explain(wave, 16_000, target="sad")
    assert sad.label == "sad"
    fine = rec.explain(wave, 16_000, stage=2)
    assert fine.stage == 2 and fine.maps[0].heat.shape == sad.maps[0].heat.shape
    with pytest.raises(ValueError, match="unknown emotion"):
        rec.explain(wave, 16_000, target="bored")
    with pytest.raises(ValueError, match="stage"):
        rec.explain(wave, 16_000, stage=7)


def test_explain_needs_the_torch_backend():
    onnx_like = SimpleNamespace(name="onnx", labels=EMOTIONS, sample_rate=16_000)  # the guard needs no export
    with pytest.raises(ValueError, match="gradients"):
        Recognizer(onnx_like).explain(tiny_files()[0])


def test_the_bundled_model_is_explained_with_predicts_numbers(tmp_path, capsys):
    silence = tmp_path / "silence.wav"  # no speech: the model's own answer, where members used to disagree
    sf.write(silence, np.zeros(5 * 16_000, np.float32), 16_000)
    assert main(["predict", str(silence), "--min-speech-seconds", "0"]) == 0  # the model's answer, not no_speech
    predicted = capsys.readouterr().out
    assert main(["explain", str(silence), "-o", str(tmp_path / "why.png")]) == 0
    explained = capsys.readouterr().out.splitlines()
    assert explained[0] + "\n" == predicted
    assert "maps of mfcc;" in explained[1]  # the bundled model (v6) is one MFCC network


def test_an_ensemble_is_explained_member_by_member_with_predicts_numbers(tiny_model, tmp_path, capsys):
    from emovox.models import load_bundle, save_ensemble

    sharp, soft = load_bundle(tiny_model), load_bundle(tiny_model)
    soft.extra["calibration"] = {**sharp.extra["calibration"], "temperature": 3 * sharp.extra["calibration"]["temperature"]}
    folder = save_ensemble({"sharp": sharp, "soft": soft}, tmp_path / "ens")
    clip = str(tiny_files()[2])
    assert main(["predict", clip, "--model", str(folder)]) == 0
    predicted = capsys.readouterr().out
    assert main(["explain", clip, "--model", str(folder), "-o", str(tmp_path / "why.png")]) == 0
    explained = capsys.readouterr().out.splitlines()
    assert explained[0] + "\n" == predicted  # the ensemble's numbers, not one member's
    maps = explained[1].split("maps of ")[1].split(";")[0]
    assert len(maps.split(", ")) == 2  # one map per member


def test_cli_explain_writes_a_figure(tiny_model, tmp_path, capsys):
    out = tmp_path / "why.png"
    assert main(["explain", str(tiny_files()[5]), "--model", str(tiny_model), "-o", str(out)]) == 0
    assert out.stat().st_size > 20_000 and "wrote" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "missing.wav"), "--model", str(tiny_model), "-o", str(out)]) == 2
