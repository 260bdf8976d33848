"""Distributed training: `torchrun -m emovox train` with two gloo ranks on this machine ends like
one process with the same global batch; the sampler, the BatchNorm and the backend choice.

Tolerance of the equivalence (fp32, no bf16, no dropout, one thread per process, 6 steps of
one-cycle AdamW at max_lr 0.003): every weight within 1e-2 of the one-process run and the whole
difference within 2e-3 of the weights' norm; training loss within a relative 1e-5, validation
loss within 1e-5, validation accuracy, UA and F1 equal. Measured here: weights within 2.4e-4 to
2.9e-3 (norm 1.7e-5 to 3.0e-4); the same one-process run on 2 threads instead of 1 differs by
as much (2.8e-3, norm 3.0e-4), while BatchNorm over each rank's half instead of the global
batch gives 0.34 (norm 0.039). The ranks add gradients and batch statistics in another order
than one process: float32 rounding, which AdamW's normalised steps amplify where a gradient is
near zero (a more chaotic training, e.g. max_lr 0.03 here, amplifies it further: there even
the thread count changes the result).
"""

from __future__ import annotations

import csv
import functools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emovox.cli import main
from emovox.training import distributed, evaluate, trainer
from emovox.training.distributed import Context, ShardedBatches, choose_backend, convert_batchnorm

from .synthetic import make_ravdess, tiny_overrides

WEIGHT_ATOL = 1e-2
WEIGHT_NORM_RTOL = 2e-3
LOSS_RTOL = 1e-5
VAL_LOSS_ATOL = 1e-5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_ravdess(tmp_path_factory.mktemp("synthetic"))
    return root, tmp_path_factory.mktemp("cache")


def train_args(corpus, out, *extra) -> list[str]:
    root, cache = corpus
    sets = [a for o in tiny_overrides(root, cache, epochs=3, batch_size=8) for a in ("--set", o)]
    return ["train", "--data", str(root), "--out", str(out), *sets, *extra]


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone` (a free local port) of `python -m emovox ARGS`, this tree first."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           "-m", "emovox", *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    assert main(train_args(corpus, out)) == 0
    return out


def metrics(run) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def assert_same_run(a, b) -> None:
    ra, rb = metrics(a), metrics(b)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb]
    for x, y in zip(ra, rb):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=LOSS_RTOL)
        assert y["val_loss"] == pytest.approx(x["val_loss"], abs=VAL_LOSS_ATOL)
        for k in ("train_acc", "val_acc", "val_ua", "val_f1", "lr"):
            assert y[k] == pytest.approx(x[k], rel=1e-9, abs=1e-12), k
    wa, wb = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    diff = torch.cat([(wa[k].double() - wb[k].double()).flatten() for k in wa if wa[k].is_floating_point()])
    norm = torch.cat([wa[k].double().flatten() for k in wa if wa[k].is_floating_point()]).norm()
    assert diff.abs().max() <= WEIGHT_ATOL, f"weights differ by up to {diff.abs().max():.3g}"
    assert diff.norm() <= WEIGHT_NORM_RTOL * norm, f"weights differ by {diff.norm() / norm:.3g} of their norm"


def test_two_gloo_ranks_end_like_one_process_with_the_same_global_batch(corpus, one_process, tmp_path):
    two = tmp_path / "two"
    proc = torchrun(train_args(corpus, two))
    assert_same_run(one_process, two)
    # one writer: rank 0 wrote the same files as the one process, and printed the report once
    assert sorted(p.relative_to(two).as_posix() for p in two.rglob("*")) == \
        sorted(p.relative_to(one_process).as_posix() for p in one_process.rglob("*"))
    assert proc.stdout.count("# Run two") == 1


@pytest.mark.slow  # 15 s on 2 cores; the equivalence test above runs by default
def test_a_distributed_run_resumes_a_checkpoint(corpus, one_process, tmp_path, monkeypatch):
    """A run cut after its first epoch (one process) is finished by two ranks with --resume."""
    cut = tmp_path / "cut"

    def stop(epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "train", functools.partial(trainer.train, on_epoch_end=stop))  # train_on_fold's
    assert main(train_args(corpus, cut)) == 130
    monkeypatch.undo()
    first = metrics(cut)
    assert [r["epoch"] for r in first] == [1]
    torchrun(train_args(corpus, cut, "--resume"))
    assert metrics(cut)[0] == first[0]  # epoch 1 came from the checkpoint: not trained again
    assert_same_run(one_process, cut)


# ---------------------------------------------------------------- the pieces, in one process


def small_maker(mixup: bool, normalize: str):
    from emovox.augment import Mixup
    from emovox.features import FeatureConfig
    from emovox.pipeline import Preprocessing
    from emovox.training.batches import BatchMaker
    from emovox.training.data import FeatureSet

    g = torch.Generator().manual_seed(0)
    images = [torch.randn(64, 120, generator=g) * 10 - 40 for _ in range(10)]
    fs = FeatureSet(images, [(5, 110)] * 10, np.arange(10) % 4, [None] * 10)
    pipe = Preprocessing(features=FeatureConfig(normalize=normalize))
    return BatchMaker(fs, pipe, 4, seed=3, mixup=Mixup(0.4) if mixup else None)


@pytest.mark.parametrize("mixup, normalize", [(False, "window"), (True, "bins")])
def test_the_shares_of_the_ranks_make_the_global_batch(mixup, normalize):
    maker = small_maker(mixup, normalize)
    whole = list(maker.epoch(2))
    shares = [list(ShardedBatches(maker, Context(rank=r, world=2)).epoch(2)) for r in range(2)]
    assert len(whole) == len(shares[0]) == len(shares[1]) == 2
    for b, s0, s1 in zip(whole, *shares):
        assert len(s0.y) == len(s1.y) == 2
        assert torch.equal(torch.cat([s0.windows, s1.windows]), b.windows)
        assert torch.equal(torch.cat([s0.y, s1.y]), b.y)
        if normalize == "bins":
            assert torch.equal(torch.cat([s0.stats.mean, s1.stats.mean]), b.stats.mean)
            assert torch.equal(torch.cat([s0.stats.std, s1.stats.std]), b.stats.std)
        if mixup:
            assert torch.equal(torch.cat([s0.y2, s1.y2]), b.y2) and s0.lam == s1.lam == b.lam
    with pytest.raises(ValueError, match="divide by the 3 processes"):
        ShardedBatches(maker, Context(rank=0, world=3))


def test_sync_batchnorm_keeps_the_parameters_and_is_plain_batchnorm_in_one_process():
    from emovox.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", 8, 1, width=8)
    params = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    x = torch.randn(4, 1, 64, 40)
    model.train()
    ref = model(x)
    torch.manual_seed(0)
    again = build_model("resnet18", 8, 1, width=8).train()
    convert_batchnorm(again)
    assert any(isinstance(m, distributed.SyncBatchNorm) for m in again.modules())
    assert list(again.state_dict()) == keys
    torch.testing.assert_close(again(x), ref)  # no process group: the statistics of this batch
    convert_batchnorm(model)
    assert {n: p for n, p in model.named_parameters()} == params  # the same tensors: optimizers stay valid


def test_the_backend_follows_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend({}) == ("gloo", torch.device("cpu"))
    with pytest.raises(ValueError, match="sees none"):
        choose_backend({distributed.ENV_BACKEND: "nccl"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choose_backend({}, local_rank=3) == ("nccl", torch.device("cuda", 1))
    assert choose_backend({distributed.ENV_BACKEND: "gloo"}) == ("gloo", torch.device("cpu"))
    with pytest.raises(ValueError, match="gloo or nccl"):
        choose_backend({distributed.ENV_BACKEND: "mpi"})


def test_python_m_emovox_is_the_command_line():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "emovox", "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("emovox ")
