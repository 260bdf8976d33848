"""Batch prediction: workers, incremental results, resume after an interruption, bad files."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from emovox import audio
from emovox.batch import ResultsFile
from emovox.cli import main
from emovox.inference import Recognizer

from .conftest import tiny_files


@pytest.fixture()
def folder(tmp_path):
    """16 real clips and 2 unreadable files in nested folders."""
    root = tmp_path / "calls"
    for i, f in enumerate(tiny_files()[:16]):
        dest = root / f"day{i % 2}" / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    (root / "day0" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (root / "day1" / "empty.flac").write_bytes(b"")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_workers_give_the_same_answers_in_input_order(tiny_model, folder):
    rec = Recognizer.load(tiny_model, threads=1)
    files = sorted(str(p) for p in folder.rglob("*.*"))
    one = list(rec.predict_many(files, batch_size=3, workers=1))
    many = list(rec.predict_many(files, batch_size=5, workers=3))
    assert [s for s, _ in one] == [s for s, _ in many] == files
    for (_, a), (_, b) in zip(one, many):
        if isinstance(a, audio.AudioError):
            assert isinstance(b, audio.AudioError) and a.reason == b.reason
        else:
            assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert sum(isinstance(r, audio.AudioError) for _, r in one) == 2


def test_results_file_holds_every_file_and_errors(tiny_model, folder, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert main(["predict", str(folder), "--model", str(tiny_model), "-o", str(out), "-q", "--workers", "2"]) == 1
    rows = _rows(out)
    assert len(rows) == 18 and len({r["path"] for r in rows}) == 18
    bad = [r for r in rows if r["error"]]
    assert sorted(r["path"].rsplit("/", 1)[1] for r in bad) == ["corrupt.wav", "empty.flac"]
    good = rows[0] if not rows[0]["error"] else rows[1]
    assert abs(sum(float(good[k]) for k in Recognizer.load(tiny_model).labels) - 1) < 1e-3
    err = capsys.readouterr().err
    assert "2 of 18 inputs could not be read" in err and "empty file" in err
    # the same file again without --resume is refused rather than overwritten
    assert main(["predict", str(folder), "--model", str(tiny_model), "-o", str(out), "-q"]) == 2
    assert len(_rows(out)) == 18


def test_an_interrupted_run_resumes_where_it_stopped(tiny_model, folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results.jsonl"
    real_load, calls = audio.load, []

    def flaky_load(source, *a, **k):  # Ctrl-C arrives while the 9th file is being decoded
        calls.append(source)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real_load(source, *a, **k)

    monkeypatch.setattr(audio, "load", flaky_load)
    args = ["predict", str(folder), "--model", str(tiny_model), "-o", str(out), "-q", "--workers", "1",
            "--batch-size", "4"]
    assert main(args) == 130
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(first) < 18  # what finished is kept
    with out.open("a") as f:
        f.write('{"path": "half a line')  # the interruption cut a row in half
    monkeypatch.setattr(audio, "load", real_load)
    assert main(args + ["--resume"]) == 1  # 1: the two unreadable files
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 18 and len({r["path"] for r in rows}) == 18
    assert rows[: len(first)] == first
    assert f"{len(first)} files already in" in capsys.readouterr().err


def test_results_file_checks(tmp_path):
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        ResultsFile(tmp_path / "r.txt", ["a"])
    (tmp_path / "other.csv").write_text("path,label,uncertain,x,y,error\n")
    with pytest.raises(ValueError, match="columns differ"):
        ResultsFile(tmp_path / "other.csv", ["a", "b"], resume=True)
