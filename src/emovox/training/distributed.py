"""Distributed data-parallel training with PyTorch's own engine (``torchrun``).

::

    torchrun --nproc_per_node 4 -m emovox train --config configs/resnet18-mel.yaml --out runs/x

Each process (a *rank*) holds a copy of the model; :class:`DistributedDataParallel` averages
the gradients. What makes a run of N ranks the run of one process with the same global batch:

- the batches: every rank draws the epoch's seeded global batches (the same order, windows and
  augmentation as one process) and keeps its contiguous share of each (:class:`ShardedBatches`);
  ``training.batch_size`` is the *global* batch and must divide by the number of ranks;
- BatchNorm: the statistics of the global batch, not of each share (:class:`SyncBatchNorm`, a
  CPU and GPU implementation; PyTorch's own ``nn.SyncBatchNorm`` refuses CPU tensors);
- the metrics: training loss and accuracy are reduced over the ranks; validation clips are
  split across the ranks and their probabilities gathered, so every rank computes the same
  validation row and selects the same epoch;
- one writer: only rank 0 writes the run folder (logs, checkpoints, plots, model folders,
  report); the checkpoint of ``--resume`` is read by rank 0 and broadcast, so the run folder
  need not be shared with the other nodes.

The backend is ``nccl`` when CUDA GPUs are visible (each rank on ``cuda:LOCAL_RANK``) and
``gloo`` on CPUs; ``EMOVOX_DIST_BACKEND=gloo`` forces gloo. The device is chosen from what the
process sees, never assumed. On a GPU only the network runs there (in fp32); the features, the
loss and the metrics stay on the CPU.

Not the same as one process: dropout (each rank draws its own masks from a generator seeded by
``(seed, epoch, rank)``, so a resumed run repeats them) and ``training.balance: loss`` (each
rank's weighted loss is normalised by its own share's weights, as usual with DDP). With waveform
augmentation every rank augments the whole global batch to keep the seeded stream: that work
is repeated on each rank.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Context", "ShardedBatches", "SyncBatchNorm", "choose_backend", "convert_batchnorm", "current", "session"]

#: environment variable that forces a backend (``gloo`` or ``nccl``)
ENV_BACKEND = "EMOVOX_DIST_BACKEND"
#: minutes a rank waits for the others (feature extraction before the first step can be long)
ENV_TIMEOUT = "EMOVOX_DIST_TIMEOUT_MINUTES"


def choose_backend(environ=None, local_rank: int = 0) -> tuple[str, torch.device]:
    """``(backend, device)`` for this process: nccl on ``cuda:LOCAL_RANK`` when CUDA GPUs are
    visible, gloo on the CPU otherwise (or when ``EMOVOX_DIST_BACKEND=gloo``)."""
    environ = os.environ if environ is None else environ
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = environ.get(ENV_BACKEND, "").strip().lower() or ("nccl" if gpus else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"{ENV_BACKEND}={backend!r}: use gloo or nccl")
    if backend == "nccl":
        if not gpus:
            raise ValueError(f"{ENV_BACKEND}=nccl needs CUDA GPUs and this process sees none; use gloo")
        return backend, torch.device("cuda", local_rank % gpus)
    return backend, torch.device("cpu")


@dataclass
class Context:
    """This process's place in a training: rank 0 of 1 unless launched by ``torchrun``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    bn_group: Any = None  # the process group of SyncBatchNorm (its own: no interleaving with DDP's)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        return self.local_rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Rank 0 of each node runs the block first (e.g. builds the feature cache), the node's
        other ranks after it (and read the cache)."""
        if self.distributed and not self.is_local_main:
            dist.barrier()
        yield
        if self.distributed and self.is_local_main:
            dist.barrier()

    def threads(self, wanted: int) -> int:
        """CPU threads per rank: ``wanted``, but no more than this node's cores shared by its ranks."""
        if not self.distributed or self.device.type != "cpu":
            return wanted
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(wanted, cores // self.local_world))

    # ------------------------------------------------------------ the model and the batches

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: ``model`` itself in one process; else ``model`` with synchronised
        BatchNorm, moved to this rank's device, inside :class:`DistributedDataParallel`. ``model``
        keeps its parameter objects (an optimizer built on it stays valid) and its state-dict keys."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        convert_batchnorm(model, self.bn_group)
        model.to(self.device)
        # buffers (BatchNorm's running statistics) are equal on every rank: no broadcast before each forward
        import inspect

        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in \
            inspect.signature(DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False}
        ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                      **no_sync)
        return ddp if self.device.type == "cpu" else OnDevice(ddp, self.device)

    def shard(self, batches):
        """This rank's share of each global batch of a :class:`~emovox.training.batches.BatchMaker`."""
        return ShardedBatches(batches, self) if self.distributed else batches

    def epoch_totals(self, losses: list[float], correct: int, seen: int) -> tuple[float, int, int]:
        """``(mean training loss, correct, seen)`` of an epoch over every rank."""
        mean = float(np.mean(losses))
        if not self.distributed:
            return mean, correct, seen
        t = torch.tensor([mean, float(correct), float(seen)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        mean_all, correct_all, seen_all = t.cpu().tolist()
        return mean_all / self.world, int(round(correct_all)), int(round(seen_all))

    def predict_clips(self, classifier, images: list[torch.Tensor], bounds: list[tuple[int, int]]) -> np.ndarray:
        """:func:`emovox.pipeline.predict_clips`, the clips split across the ranks (every
        ``world``-th from ``rank``) and the probabilities gathered: every rank gets all of them."""
        from ..pipeline import ClipClassifier, predict_clips

        if self.device.type != "cpu":
            classifier = ClipClassifier(OnDevice(classifier.model, self.device), classifier.pipeline,
                                        float(classifier.temperature), classifier.labels)
        if not self.distributed:
            return predict_clips(classifier, images, bounds)
        mine = list(range(self.rank, len(images), self.world))
        probs = predict_clips(classifier, [images[i] for i in mine], [bounds[i] for i in mine]) if mine \
            else np.zeros((0, len(classifier.labels)), np.float32)
        parts: list = [None] * self.world
        dist.all_gather_object(parts, (mine, probs))
        out = np.zeros((len(images), len(classifier.labels)), np.float32)
        for idx, p in parts:
            if idx:
                out[idx] = p
        return out

    # ------------------------------------------------------------ rank 0 decides, the others follow

    def from_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on rank 0 and its result (or its error) handed to every rank."""
        if not self.distributed:
            return fn()
        box: list = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as err:  # every rank raises it, rather than waiting for rank 0 forever
                box[0] = ("error", err)
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def load_checkpoint(self, path: Path) -> dict | None:
        """The training state at ``path`` (None if there is none), read on rank 0 (tensors only,
        ``weights_only=True``) and broadcast."""
        def read():
            return torch.load(path, map_location="cpu", weights_only=True) if Path(path).exists() else None

        return self.from_main(read)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


class OnDevice(nn.Module):
    """``module`` on ``device`` behind a CPU interface: inputs moved there, outputs back."""

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module, self.device = module, device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self.device)).cpu()


class ShardedBatches:
    """A distributed sampler over a :class:`~emovox.training.batches.BatchMaker`: the seeded
    global batches of one process, each cut into ``world`` contiguous shares of
    ``batch_size / world`` clips; rank ``r`` gets share ``r``. Before each epoch the rank's
    torch generator (dropout) is seeded with ``(seed, epoch, rank)``."""

    def __init__(self, maker, ctx: Context) -> None:
        if maker.batch_size % ctx.world:
            raise ValueError(f"training.batch_size {maker.batch_size} is the global batch: it must divide by the "
                             f"{ctx.world} processes (e.g. {ctx.world * max(1, maker.batch_size // ctx.world)})")
        self.maker, self.ctx = maker, ctx
        self.share = maker.batch_size // ctx.world
        groups = getattr(maker, "speaker_groups", 0)
        if groups and self.share % groups:
            raise ValueError(f"each of the {ctx.world} processes gets {self.share} clips of a batch: not whole "
                             f"speaker groups of {groups} (make training.batch_size a multiple of {ctx.world * groups})")

    def __len__(self) -> int:
        return len(self.maker)

    def epoch(self, epoch: int) -> Iterator:
        torch.manual_seed(int(np.random.SeedSequence([self.maker.seed, epoch, self.ctx.rank]).generate_state(1)[0]))
        lo, hi = self.ctx.rank * self.share, (self.ctx.rank + 1) * self.share
        for batch in self.maker.epoch(epoch):
            yield share_of(batch, lo, hi)


def share_of(batch, lo: int, hi: int):
    """Rows ``lo:hi`` of a :class:`~emovox.training.batches.Batch` (mixup's blend weight is the batch's)."""
    from ..features import Stats

    def rows(x):
        return x[lo:hi] if x is not None else None

    def stats_rows(s):
        return Stats(s.mean[lo:hi], s.std[lo:hi]) if s is not None else None

    return batch._replace(windows=batch.windows[lo:hi], y=batch.y[lo:hi], stats=stats_rows(batch.stats),
                          y2=rows(batch.y2), soft=rows(batch.soft), clean=rows(batch.clean),
                          clean_stats=stats_rows(batch.clean_stats), groups=rows(batch.groups),
                          speakers=rows(batch.speakers))


# ---------------------------------------------------------------- synchronised BatchNorm


class _SyncBatchNormFn(torch.autograd.Function):
    """Batch normalisation over the samples of every rank (forward: one all-gather of each
    rank's count, mean and sum of squared deviations; backward: one all-reduce)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        x64 = xf.double()
        mean_l = x64.mean(dims)
        m2_l = ((x64 - mean_l.view(shape)) ** 2).sum(dims)
        count = float(x.numel() // c)
        packed = torch.cat([mean_l, m2_l, mean_l.new_tensor([count])])
        world = dist.get_world_size(group)
        parts = [torch.empty_like(packed) for _ in range(world)]
        dist.all_gather(parts, packed, group=group)
        stacked = torch.stack(parts)
        counts = stacked[:, -1:]
        n = counts.sum()
        mean64 = (stacked[:, :c] * counts).sum(0) / n
        m2 = (stacked[:, c:2 * c] + counts * (stacked[:, :c] - mean64) ** 2).sum(0)
        var64 = m2 / n
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean64.to(running_mean.dtype))
                unbiased = var64 * n / max(float(n) - 1, 1.0)
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        mean, invstd = mean64.float(), torch.rsqrt(var64 + eps).float()
        xhat = (xf - mean.view(shape)) * invstd.view(shape)
        y = xhat if weight is None else xhat * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(xf, weight, mean, invstd)
        ctx.group, ctx.n, ctx.dims, ctx.shape, ctx.in_dtype = group, float(n), dims, shape, x.dtype
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        xf, weight, mean, invstd = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        dyf = dy.float()
        xmu = xf - mean.view(shape)
        sum_dy = dyf.sum(dims)
        sum_dy_xmu = (dyf * xmu).sum(dims)
        total = torch.cat([sum_dy, sum_dy_xmu])
        dist.all_reduce(total, group=ctx.group)
        c = sum_dy.numel()
        mean_dy, mean_dy_xmu = total[:c] / ctx.n, total[c:] / ctx.n
        scale = invstd if weight is None else invstd * weight
        grad_x = (dyf - mean_dy.view(shape) - xmu * (invstd ** 2 * mean_dy_xmu).view(shape)) * scale.view(shape)
        # this rank's part of the affine gradients: DistributedDataParallel averages them
        grad_w = (sum_dy_xmu * invstd) if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_dy if weight is not None and ctx.needs_input_grad[2] else None
        return grad_x.to(ctx.in_dtype), grad_w, grad_b, None, None, None, None, None


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the samples of every rank.

    The same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``; in evaluation, or
    with one process, it is plain BatchNorm. Works on CPU tensors (gloo) and GPU ones (nccl).
    """

    def __init__(self, *args, process_group=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        synced = (self.training and dist.is_available() and dist.is_initialized()
                  and dist.get_world_size(self.process_group) > 1)
        if not synced:
            return super().forward(x)
        self._check_input_dim(x)
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return _SyncBatchNormFn.apply(x, self.weight, self.bias,
                                      self.running_mean if self.track_running_stats else None,
                                      self.running_var if self.track_running_stats else None,
                                      self.eps, momentum or 0.0, self.process_group)


def convert_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace, in place, every BatchNorm layer below ``module`` by a :class:`SyncBatchNorm`
    holding the same parameter and buffer tensors (optimizers and state dicts stay valid)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats, process_group=process_group)
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            if child.track_running_stats:
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            convert_batchnorm(child, process_group)
    return module


# ---------------------------------------------------------------- the process group

_SINGLE = Context()
_current = _SINGLE


def current() -> Context:
    """The context of the :func:`session` this process is in (rank 0 of 1 outside one)."""
    return _current


@contextlib.contextmanager
def session(environ=None) -> Iterator[Context]:
    """Join torchrun's process group for the block when launched with more than one process
    (``WORLD_SIZE > 1``; ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` come from
    torchrun), else a one-process :class:`Context`. On leaving normally the ranks wait for
    each other, then the group is destroyed."""
    global _current
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or _current.distributed:
        yield _current
        return
    rank, local_rank = int(environ["RANK"]), int(environ.get("LOCAL_RANK", "0"))
    local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
    backend, device = choose_backend(environ, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(minutes=float(environ.get(ENV_TIMEOUT, "120")))
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    ok = False
    try:
        ctx = Context(rank, world, local_rank, local_world, device, backend, dist.new_group(backend=backend))
        _current = ctx
        yield ctx
        ok = True
    finally:
        _current = _SINGLE
        if ok:
            dist.barrier()
        dist.destroy_process_group()
