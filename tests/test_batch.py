"""Batch prediction: workers, incremental results, resume after an interruption, bad files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from emovox import audio
from emovox.batch import ResultsFile, merge, parse_shard, shard
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



def test_predict_json_output_is_an_array_of_the_results_rows(tiny_model, folder, tmp_path, capsys):
    """``-o x.json`` writes what ``-o x.jsonl`` writes, as one JSON array (like ``timeline -o x.json``)."""
    from emovox.batch import json_array

    common = [str(folder), "--model", str(tiny_model), "-q", "--workers", "1"]
    out, lines = tmp_path / "results.json", tmp_path / "results.jsonl"
    assert main(["predict", *common, "-o", str(out)]) == 1  # 1: the two unreadable files
    assert main(["predict", *common, "-o", str(lines)]) == 1
    rows = json.loads(out.read_text())
    assert rows == _jsonl(lines) and len(rows) == 18 and sum(bool(r["error"]) for r in rows) == 2
    capsys.readouterr()
    main(["predict", *common, "--format", "json"])  # stdout: the same predictions, unreadable files on stderr
    printed = json.loads(capsys.readouterr().out)
    assert printed == [{k: v for k, v in r.items() if k != "error"} for r in rows if not r["error"]]
    # --resume reads the array and writes it again with the missing rows
    out.write_text(json_array(rows[:5]).rstrip())  # no final newline: nothing is cut as in the line formats
    assert main(["predict", *common, "-o", str(out), "--resume"]) == 1
    assert json.loads(out.read_text()) == rows
    # shards in JSON merge like the line formats
    halves = [tmp_path / f"r.shard-{k}-of-2.json" for k in range(2)]
    for k, half in enumerate(halves):
        half.write_text(json_array(rows[k::2]))
    assert merge(halves, tmp_path / "all.json") == 18
    assert json.loads((tmp_path / "all.json").read_text()) == sorted(rows, key=lambda r: r["path"])

def test_results_file_checks(tmp_path):
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        ResultsFile(tmp_path / "r.txt", ["a"])
    (tmp_path / "other.csv").write_text("path,label,uncertain,x,y,error\n")
    with pytest.raises(ValueError, match="columns differ"):
        ResultsFile(tmp_path / "other.csv", ["a", "b"], resume=True)


# ---------------------------------------------------------------- sharding, merging, kill -9


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_three_shards_merge_to_the_rows_of_one_run(tiny_model, folder, tmp_path, monkeypatch):
    common = [str(folder), "--model", str(tiny_model), "-q", "--workers", "1", "--batch-size", "1"]
    whole = tmp_path / "whole.jsonl"
    assert main(["predict", *common, "-o", str(whole)]) == 1  # 1: the two unreadable files
    out = tmp_path / "out.jsonl"
    for k in range(3):
        assert main(["predict", *common, "-o", str(out), "--shard", f"{k}/3"]) in (0, 1)  # 1: an unreadable file
    shards = sorted(tmp_path.glob("out.shard-*-of-3.jsonl"))
    assert [p.name for p in shards] == [f"out.shard-{k}-of-3.jsonl" for k in range(3)]
    sizes = [len(_jsonl(p)) for p in shards]
    assert sizes == [6, 6, 6]  # 18 files: every third of the sorted list
    assert not set.intersection(*({r["path"] for r in _jsonl(p)} for p in shards))
    assert main(["merge", *map(str, shards), "-o", str(out)]) == 0
    assert _jsonl(out) == sorted(_jsonl(whole), key=lambda r: r["path"])
    # a shard resumes like any run; torchrun's RANK / WORLD_SIZE choose the shard when --shard is absent
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    before = _jsonl(shards[1])
    assert main(["predict", *common, "-o", str(out), "--resume"]) == 0  # nothing left to do in shard 1
    assert _jsonl(shards[1]) == before


def test_merge_refuses_what_does_not_belong_together(tmp_path):
    def write(name, rows, labels=("a", "b")):
        with ResultsFile(tmp_path / name, labels) as w:
            for path, label in rows:
                row = {"path": path, "answer": label, "label": label, "uncertain": False, "speech": True,
                       "speech_seconds": 1.0, "probabilities": {k: 1.0 if k == label else 0.0 for k in labels}}
                w.write(path, type("P", (), {"to_dict": lambda self, row=row: row})())
        return tmp_path / name

    a = write("r.shard-0-of-2.csv", [("x.wav", "a")])
    b = write("r.shard-1-of-2.csv", [("y.wav", "b")])
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "all.csv")]) == 0
    assert [r["path"] for r in _rows(tmp_path / "all.csv")] == ["x.wav", "y.wav"]
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "all.csv")]) == 2  # never overwrites
    dup = write("r2.csv", [("x.wav", "b")])
    with pytest.raises(ValueError, match="x.wav is in both"):
        merge([a, dup], tmp_path / "m1.csv")
    other = write("other.csv", [("z.wav", "c")], labels=("a", "c"))
    with pytest.raises(ValueError, match="columns differ"):
        merge([a, other], tmp_path / "m2.csv")
    with pytest.raises(ValueError, match=r"shard\(s\) 1 of 2 missing"):
        merge([a], tmp_path / "m3.csv")
    assert merge([a], tmp_path / "m3.csv", partial=True) == 1
    assert not (tmp_path / "m1.csv").exists() and not (tmp_path / "m2.csv").exists()


@pytest.mark.parametrize("spec", ["3/3", "-1/2", "a/b", "1/0", "2"])
def test_bad_shard_specs(spec):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(spec)


def test_shards_are_deterministic_disjoint_and_cover():
    files = [f"f{i:03d}.wav" for i in range(100)]
    parts = [shard(reversed(files), k, 7) for k in range(7)]
    assert sorted(sum(parts, [])) == files
    assert {len(p) for p in parts} == {14, 15}
    assert parts == [shard(files, k, 7) for k in range(7)]


def test_predict_killed_with_sigkill_resumes_to_the_uninterrupted_rows(tiny_model, folder, tmp_path):
    """A real SIGKILL of a child `emovox predict` mid-run, then --resume in this process."""
    out = tmp_path / "killed.jsonl"
    common = [str(folder), "--model", str(tiny_model), "-q", "--workers", "1", "--batch-size", "1"]
    # the child decodes slowly (0.3 s a file) so that the kill lands mid-run
    code = ("import sys, time\nimport emovox.audio as a\nreal = a.load\n"
            "def slow(*x, **k):\n    time.sleep(0.3)\n    return real(*x, **k)\n"
            "a.load = slow\nfrom emovox.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code, "predict", *common, "-o", str(out)], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL
    first = out.read_bytes()
    assert 4 <= first.count(b"\n") < 18
    assert (tmp_path / "killed.jsonl.lock").exists()  # left behind by the dead process: stale
    assert main(["predict", *common, "-o", str(out), "--resume"]) == 1  # 1: the two unreadable files
    whole = tmp_path / "whole.jsonl"
    assert main(["predict", *common, "-o", str(whole)]) == 1
    key = lambda r: r["path"]  # noqa: E731
    assert sorted(_jsonl(out), key=key) == sorted(_jsonl(whole), key=key)
    assert out.read_bytes().startswith(first[: first.rfind(b"\n") + 1])  # finished rows never rewritten
    assert not (tmp_path / "killed.jsonl.lock").exists()
