"""How many threads emovox uses, decided in one place, so that it never oversubscribes the CPU.

- :func:`available_cores`: the cores this process may run on (its affinity mask: a container,
  ``taskset`` or a cgroup cpuset can give fewer than the machine has).
- :func:`inference_threads`: threads for one inference (per-clip prediction, timeline, live):
  ``EMOVOX_THREADS``, else ``OMP_NUM_THREADS``, else :data:`DEFAULT_INFERENCE_THREADS` (1).
- :func:`share`: batch work as ``workers × threads`` that add up to the cores.
- :func:`step_threads`: training steps leave a core to the thread that augments the batches.
- :func:`quiet_openmp`: ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy.
- :func:`configure_torch` and :func:`onnx_session_options`: apply a thread count to each runtime.

Nothing here imports torch or onnxruntime at module level (the ONNX path must start without
torch); the runtimes are imported, or handed in, only by the functions that configure them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

#: Our own variable: threads per inference (also read by ``emovox serve``).
ENV_THREADS = "EMOVOX_THREADS"

#: Threads for one inference when nothing says otherwise. Measured on a 2-core AMD EPYC (AVX2, no
#: AVX-512/AMX) while a training used the other core, bundled model, one 3.5 s RAVDESS clip,
#: median of 8 predictions: torch 0.043 s with 1 thread against 2.46 s with 2 (torch's own
#: default there; 57x slower, 0.18-2.5 s from run to run: OpenMP threads waiting for a core the
#: training holds), onnxruntime 0.029 s against 0.063 s. Uncontended, a second thread gains little
#: on a clip this small (issue 14: batch predict, no gain from a second thread), while under load
#: it costs 2-57x. So one thread per inference; more throughput comes from more inferences at once
#: (:func:`share`), which do not wait on one another.
DEFAULT_INFERENCE_THREADS = 1

_interop_set = False  # torch.set_num_interop_threads may be called once, before any parallel work


def available_cores() -> int:
    """Cores this process may run on: its affinity mask, else ``os.cpu_count()``; at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    return max(1, n)


def env_threads(environ=None) -> int | None:
    """Threads the environment asks for: ``EMOVOX_THREADS``, else ``OMP_NUM_THREADS``; ``None``
    when neither is set. ``OMP_NUM_THREADS`` may be a nested list (``"4,2"``): its first level
    counts. Raises ``ValueError`` for a value that is not a positive integer."""
    environ = os.environ if environ is None else environ
    for var in (ENV_THREADS, "OMP_NUM_THREADS"):
        raw = (environ.get(var) or "").strip()
        if not raw:
            continue
        first = raw.split(",")[0].strip()
        try:
            n = int(first)
        except ValueError:
            raise ValueError(f"{var}={raw!r} is not a number of threads") from None
        if n < 1:
            raise ValueError(f"{var}={raw!r}: the number of threads must be at least 1")
        return n
    return None


def _check(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return value


def inference_threads(requested: int | None = None, environ=None) -> int:
    """Threads for one inference: ``requested``, else the environment (:func:`env_threads`),
    else :data:`DEFAULT_INFERENCE_THREADS`."""
    return _check("threads", requested) or env_threads(environ) or DEFAULT_INFERENCE_THREADS


@dataclass(frozen=True)
class Plan:
    """``workers`` doing work side by side, each with ``threads`` threads."""

    workers: int
    threads: int


def share(workers: int | None = None, threads: int | None = None, cores: int | None = None,
          environ=None) -> Plan:
    """Share the cores between ``workers`` running at once, ``threads`` each, so that
    ``workers × threads`` adds up to the cores (never more, unless the caller asks for more
    workers or threads than there are cores).

    Whatever is given is kept; the other fills the cores: threads per worker default to
    :func:`inference_threads` (the environment, else 1), workers to ``cores // threads``; given
    ``workers`` alone, each gets ``cores // workers`` threads. Both at least 1.
    """
    cores = cores or available_cores()
    _check("workers", workers)
    if threads is None and workers is not None:
        threads = env_threads(environ) or max(1, cores // workers)
    threads = inference_threads(threads, environ)
    workers = workers or max(1, cores // threads)
    return Plan(workers, threads)


def quiet_openmp(environ=None) -> bool:
    """Tell OpenMP not to spin: ``OMP_WAIT_POLICY=PASSIVE``, only when the user has not chosen a
    policy. Returns True when it set it.

    An idle OpenMP thread otherwise spins for a while (GNU libgomp: up to ~300k iterations)
    waiting for the next parallel region, taking a core another process or another inference
    could use. The runtime reads the variable once, when it loads (torch's libgomp at
    ``import torch``), so this runs when ``emovox.inference`` is first imported (its
    ``__init__.py``), before emovox imports torch; a program that imported torch first keeps
    torch's setting. Training does not import ``emovox.inference`` and keeps OpenMP's default:
    it is meant to have the cores to itself, where spinning saves a wake-up per parallel region.
    onnxruntime's thread pool is not OpenMP: :func:`onnx_session_options` turns its spinning off.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OMP_WAIT_POLICY"):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def step_threads(threads: int, batch_thread: bool) -> int:
    """torch threads for training steps out of ``threads``: one fewer (at least 1) while a
    thread beside them makes the batches (waveform augmentation: numpy, soxr and PyAV work), so
    the two add up to the cores given. Measured on a 2-core AMD EPYC Zen 4 (AVX-512, no AMX),
    MFCC robust recipe, fold 1, 6 epochs, 3 pairs of runs: wall 0.78x and CPU time 0.69x of 2 step
    threads beside the batch thread (OpenMP threads waiting for a core the batch thread holds).
    Measured where augmentation, not the step, sets the pace (docs/performance.md)."""
    return max(1, threads - 1) if batch_thread else threads


@contextmanager
def torch_threads(threads: int):
    """torch's intra-op threads set to ``threads`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def configure_torch(threads: int, torch=None) -> None:
    """torch's intra-op threads to ``threads``, and its inter-op pool (which emovox never uses)
    to 1 thread, once: torch refuses a second call, or one after parallel work has started."""
    global _interop_set
    if torch is None:
        import torch
    torch.set_num_threads(threads)
    if not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already ran: keep what is there
            pass


def onnx_session_options(threads: int, ort=None):
    """onnxruntime ``SessionOptions`` for ``threads`` intra-op threads, one inter-op thread,
    and threads that sleep when idle instead of spinning (``session.intra_op.allow_spinning``)."""
    if ort is None:
        import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts
