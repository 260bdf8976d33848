"""The command line as a user runs it: real processes for the entry point, main() for the rest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from emovox.cli import main

from .conftest import SPEECH


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "clips"
    (d / "sub").mkdir(parents=True)
    shutil.copy(SPEECH / "Actor_06" / "03-01-03-01-01-01-06.flac", d / "a.flac")
    shutil.copy(SPEECH / "Actor_07" / "03-01-04-01-01-01-07.flac", d / "sub" / "b.wav")  # FLAC content, .wav name
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (d / "empty.mp3").write_bytes(b"")
    (d / "notes.txt").write_text("not audio, not listed")
    return d


def test_predict_json_keeps_going_past_bad_files(folder, tiny_model, capsys):
    code = main(["predict", str(folder), "--format", "json", "--model", str(tiny_model), "--threads", "2"])
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert code == 1  # some inputs failed
    assert sorted(r["path"].split("/")[-1] for r in rows) == ["a.flac", "b.wav"]
    for r in rows:
        assert set(r) >= {"path", "label", "probabilities"} and len(r["probabilities"]) == 8
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert "corrupt.wav" in err and "empty.mp3" in err and "2 of 4 inputs" in err


def test_predict_csv_and_glob(folder, tiny_model, capsys):
    code = main(["predict", str(folder / "*.flac"), "--format", "csv", "--model", str(tiny_model)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[0] == ("path,answer,label,uncertain,speech,speech_seconds,"
                        "neutral,calm,happy,sad,angry,fearful,disgust,surprised")
    assert len(lines) == 2 and lines[1].startswith(str(folder / "a.flac"))


def test_predict_among_your_emotions(folder, tiny_model, capsys):
    code = main(["predict", str(folder / "*.flac"), "--format", "csv", "--model", str(tiny_model),
                 "--emotions", "Angry, happy,neutral,sad"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[0] == "path,answer,label,uncertain,speech,speech_seconds,angry,happy,neutral,sad"
    row = lines[1].split(",")
    assert row[2] in ("angry", "happy", "neutral", "sad") and sum(map(float, row[6:])) == pytest.approx(1.0, abs=3e-4)
    assert main(["predict", str(folder / "*.flac"), "--model", str(tiny_model), "--emotions", "bored,sad"]) == 2
    assert "unknown emotion 'bored'" in capsys.readouterr().err


def test_missing_input_is_reported(tiny_model, tmp_path, capsys):
    assert main(["predict", "nope/*.wav", "--model", str(tiny_model)]) == 1
    err = capsys.readouterr().err
    assert "nope/*.wav" in err and "no audio files found" in err
    assert main(["predict", str(tmp_path), "--format", "json", "--model", str(tiny_model)]) == 1  # empty folder
    assert "no audio files found" in capsys.readouterr().err


def test_user_errors_never_end_in_a_traceback(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("training: [unclosed")
    args = ["train", "--config", str(bad_yaml), "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert main(["train", "--set", "training.batch_size=abc", "--out", str(tmp_path / "r")]) == 2
    assert main(["show", str(SPEECH / "Actor_01" / "03-01-05-02-01-01-01.flac"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("emovox: error:") == 3 and "must be a number" in err


def test_show_writes_the_four_panel_figure(tmp_path):
    out = tmp_path / "fig.png"
    assert main(["show", str(SPEECH / "Actor_01" / "03-01-05-02-01-01-01.flac"), "-o", str(out)]) == 0
    assert Image.open(out).size[0] >= 800


def test_entry_point_reports_bad_audio_without_traceback(tmp_path):
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"\x00" * 100)
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "show", str(bad), "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "emovox: error: cannot read audio" in proc.stderr and "bad.ogg" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", [pytest.param("torch", marks=pytest.mark.slow), "onnx"])  # torch: 6 s
def test_demo_runs_the_bundled_model_offline(backend):
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "demo", "--threads", "2", "--backend", backend],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("03-01-05-02-01-01-05.flac"))
    assert row[1:3] == ["angry", "angry"]  # what the actor acted, what the model heard


def test_train_command_and_resume(tiny_ravdess, tiny_config, tmp_path, capsys):
    args = ["train", "--data", str(tiny_ravdess), "--out", str(tmp_path / "run"),
            "--set", f"data.cache_dir={tiny_config.data.cache_dir}", "--set", "model.width=8",
            "--set", "training.epochs=1", "--set", "training.batch_size=8", "--set", "training.val_speakers=1",
            "--set", "training.max_lr=0.003"]
    assert main(args) == 0
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert main(args) == 2  # refuses to overwrite a finished run
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
