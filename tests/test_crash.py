"""kill -9: a real SIGKILL of a child `emovox train` / `emovox evaluate` mid-epoch, then a second
run continues from what the first left and ends with the metrics of an uninterrupted run.

(`emovox predict` killed mid-file: tests/test_batch.py.) The children train on synthetic
clips (tests/synthetic.py), slowed down by a pause before each batch so that the kill lands
inside an epoch; everything runs on one thread, so the runs are equal to the last bit. The runs
in this process draw no figures (half a second each): the children do.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from emovox.cli import main

from .synthetic import make_ravdess, tiny_overrides

#: a child `emovox` whose training batches come a little slower (the kill must land mid-epoch)
SLOW_CHILD = """
import sys, time
from emovox.training import batches
real = batches.BatchMaker._make
def slow(self, epoch):
    for b in real(self, epoch):
        time.sleep(0.1)
        yield b
batches.BatchMaker._make = slow
from emovox.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    from emovox import plots

    for name in ("plot_training", "plot_confusion", "plot_lr_find"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_ravdess(tmp_path_factory.mktemp("synthetic"), actors=(1, 2, 3, 4))
    return root, tmp_path_factory.mktemp("cache")


def options(corpus, epochs: int) -> list[str]:
    root, cache = corpus
    return ["--data", str(root), *[a for o in tiny_overrides(root, cache, epochs=epochs, batch_size=4)
                                   for a in ("--set", o)]]


def kill_when(args: list[str], ready, timeout: float = 120) -> None:
    """Start `emovox ARGS` (slowed), SIGKILL it 0.3 s after ``ready()`` holds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD, *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert child.poll() is None, f"the child ended before it could be killed: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the child never got there"
            time.sleep(0.02)
        time.sleep(0.3)
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def metrics(run) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def checkpoint_epoch(run) -> int:
    return torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]


def test_train_killed_mid_epoch_resumes_to_the_uninterrupted_run(corpus, tmp_path):
    epochs = 3
    run = tmp_path / "killed"
    args = ["train", *options(corpus, epochs), "--out", str(run)]
    kill_when(args, lambda: (run / "checkpoint.pt").exists())
    done = checkpoint_epoch(run)
    assert 1 <= done < epochs  # killed inside a later epoch: its checkpoint is one epoch behind
    assert len(metrics(run)) == done
    assert (run / ".lock").exists()  # left by the dead process: stale, taken over below
    assert main(args) == 2  # without --resume a run folder is never trained over
    assert main(args + ["--resume"]) == 0
    assert checkpoint_epoch(run) == epochs
    straight = tmp_path / "straight"
    assert main(["train", *options(corpus, epochs), "--out", str(straight)]) == 0
    assert metrics(run) == metrics(straight)  # every epoch's losses and validation scores, to the last digit
    from safetensors.torch import load_file

    for name in ("last", "best"):
        a, b = (load_file(str(r / name / "model.safetensors")) for r in (run, straight))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert not [p.name for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert not (run / ".lock").exists()


def _results(out) -> dict:
    res = json.loads((out / "results.json").read_text())
    for fold in res["folds"]:
        for k in ("train_seconds", "wall_seconds"):
            fold.pop(k)
    return {k: v for k, v in res.items() if k not in ("train_seconds", "train_seconds_std")}


def test_evaluate_killed_mid_fold_keeps_the_finished_folds_and_resumes_the_cut_one(corpus, tmp_path):
    out = tmp_path / "killed"
    args = ["evaluate", *options(corpus, 3), "--protocol", "loso", "--folds", "01,02", "--out", str(out)]
    kill_when(args, lambda: (out / "loso-02" / "checkpoint.pt").exists())
    assert (out / "loso-01" / "test.json").exists() and not (out / "loso-02" / "test.json").exists()
    assert not (out / "results.json").exists()
    fold1 = (out / "loso-01" / "test.json").read_bytes()
    cut = checkpoint_epoch(out / "loso-02")
    assert 1 <= cut < 3
    assert main(args) == 0  # an evaluation continues where it stopped
    assert (out / "loso-01" / "test.json").read_bytes() == fold1  # the finished fold was kept, not trained again
    assert len(metrics(out / "loso-02")) == 3
    straight = tmp_path / "straight"
    assert main(["evaluate", *options(corpus, 3), "--protocol", "loso", "--folds", "01,02", "--out", str(straight)]) == 0
    assert _results(out) == _results(straight)
    for fold in ("loso-01", "loso-02"):
        assert metrics(out / fold) == metrics(straight / fold)
