"""Thread counts (emovox.threads): the decisions, the environment overrides, and that the
Recognizer, the CLI, batch prediction and the server all take them from there."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
import torch

from emovox import threads
from emovox.cli import build_parser, main
from emovox.inference import Recognizer
from emovox.serve.settings import Settings

from .conftest import tiny_files


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No thread variables from the caller, and torch's thread count restored afterwards."""
    monkeypatch.delenv("EMOVOX_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cores(monkeypatch, n):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)


# ---------------------------------------------------------------- the decisions


def test_cores_come_from_the_affinity_mask(monkeypatch):
    _cores(monkeypatch, 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.available_cores() == 3


def test_cores_fall_back_to_cpu_count_and_are_never_0(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # not Linux
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert threads.available_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined"
    assert threads.available_cores() == 1
    _cores(monkeypatch, 0)
    assert threads.available_cores() == 1


def test_one_thread_per_inference_by_default():
    assert threads.DEFAULT_INFERENCE_THREADS == 1
    assert threads.inference_threads() == 1
    assert threads.inference_threads(3) == 3
    with pytest.raises(ValueError, match="at least 1"):
        threads.inference_threads(0)


def test_environment_overrides(monkeypatch):
    assert threads.env_threads() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested: the first level counts
    assert threads.env_threads() == 4 and threads.inference_threads() == 4
    monkeypatch.setenv("EMOVOX_THREADS", "2")  # ours wins over OpenMP's
    assert threads.inference_threads() == 2
    assert threads.inference_threads(1) == 1  # an explicit argument wins over both
    assert threads.env_threads({"OMP_NUM_THREADS": " "}) is None
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="EMOVOX_THREADS"):
            threads.env_threads({"EMOVOX_THREADS": bad})


def test_workers_times_threads_fit_the_cores():
    for cores, workers, per in itertools.product(range(1, 9), [None, 1, 2, 3, 4], [None, 1, 2, 3, 4]):
        plan = threads.share(workers, per, cores=cores, environ={})
        assert plan.workers >= 1 and plan.threads >= 1
        assert plan.workers == (workers or plan.workers) and plan.threads == (per or plan.threads)
        if (workers or 1) * (per or 1) <= cores:  # unless the caller asked for more than there is
            assert plan.workers * plan.threads <= cores
        if workers is None and per is None:
            assert plan == threads.Plan(cores, 1)  # one thread each, every core busy


def test_share_follows_the_environment(monkeypatch):
    _cores(monkeypatch, 4)
    assert threads.share() == threads.Plan(4, 1)
    assert threads.share(workers=2) == threads.Plan(2, 2)
    monkeypatch.setenv("EMOVOX_THREADS", "2")
    assert threads.share() == threads.Plan(2, 2)
    assert threads.share(workers=4) == threads.Plan(4, 2)  # asked for: kept


# ---------------------------------------------------------------- the runtimes


def test_omp_wait_policy_set_only_when_absent():
    env = {}
    assert threads.quiet_openmp(env) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not threads.quiet_openmp(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_importing_the_inference_code_sets_omp_wait_policy_before_torch(given):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys; from emovox import Recognizer; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [given or "PASSIVE", "False"]  # set before torch loads, never over the user's


def test_onnx_session_options():
    opts = threads.onnx_session_options(3)
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (3, 1)
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_torch_interop_threads_set_once(monkeypatch):
    calls = []

    class FakeTorch:
        def set_num_threads(self, n):
            calls.append(("intra", n))

        def set_num_interop_threads(self, n):
            calls.append(("interop", n))
            raise RuntimeError("cannot set number of interop threads after parallel work has started")

    monkeypatch.setattr(threads, "_interop_set", False)
    threads.configure_torch(2, FakeTorch())  # torch's RuntimeError is not the caller's problem
    threads.configure_torch(1, FakeTorch())
    assert calls == [("intra", 2), ("interop", 1), ("intra", 1)]


# ---------------------------------------------------------------- who uses them


def test_recognizer_defaults(tiny_model, monkeypatch):
    torch.set_num_threads(2)
    rec = Recognizer.load(tiny_model)
    assert rec.threads == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("EMOVOX_THREADS", "2")
    assert Recognizer.load(tiny_model).threads == 2 and torch.get_num_threads() == 2
    assert Recognizer.load(tiny_model, threads=1).threads == 1


def test_onnx_backend_sessions(tiny_onnx, monkeypatch):
    session = Recognizer.load(tiny_onnx).backend.session.get_session_options()
    assert (session.intra_op_num_threads, session.inter_op_num_threads) == (1, 1)
    assert session.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert Recognizer.load(tiny_onnx).backend.session.get_session_options().intra_op_num_threads == 2


def test_vad_session_does_not_spin():
    from emovox.vad import SpeechDetector

    opts = SpeechDetector().session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_cli_defaults_leave_the_choice_to_the_helper():
    parser = build_parser()
    for argv in (["predict", "x.wav"], ["timeline", "x.wav"], ["listen"], ["explain", "x.wav", "-o", "x.png"],
                 ["demo"], ["serve"]):
        assert parser.parse_args(argv).threads is None, argv
    assert parser.parse_args(["predict", "x.wav"]).workers is None
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "x.wav", "--threads", "0"])


def test_cli_predict_uses_the_helper(tiny_model, monkeypatch, capsys):
    _cores(monkeypatch, 3)
    loaded, plans = [], []
    real_load, real_share = Recognizer.load.__func__, threads.share

    def load(cls, *args, **kwargs):
        loaded.append(real_load(cls, *args, **kwargs))
        return loaded[-1]

    def share(*args, **kwargs):
        plans.append(real_share(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(Recognizer, "load", classmethod(load))
    monkeypatch.setattr(threads, "share", share)
    files = [str(f) for f in tiny_files()[:4]]
    assert main(["predict", *files, "--model", str(tiny_model), "--format", "json", "-q"]) == 0
    assert [p["path"] for p in json.loads(capsys.readouterr().out)] == files
    assert loaded[0].threads == 1
    assert plans == [threads.Plan(3, 1)]  # batch workers fill the 3 cores, one thread each


def test_server_slots_and_threads_fit_the_cores(monkeypatch):
    import emovox.serve.settings as settings

    monkeypatch.setattr(settings, "cpu_count", lambda: 4)
    assert (Settings().concurrent, Settings().inference_threads) == (4, 1)
    assert Settings(max_concurrent=1).inference_threads == 4  # one slot: all cores
    assert (Settings(threads=2).concurrent, Settings(threads=2).inference_threads) == (2, 2)
    assert (Settings(workers=2).concurrent, Settings(workers=2).inference_threads) == (2, 1)
    for w, c, t in itertools.product([1, 2, 4], [None, 1, 2], [None, 1, 2]):
        s = Settings(workers=w, max_concurrent=c, threads=t)
        assert s.concurrent >= 1 and s.inference_threads >= 1
        if w * (c or 1) * (t or 1) <= 4:
            assert s.workers * s.concurrent * s.inference_threads <= 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # respected: fewer slots, 2 threads each
    assert (Settings().concurrent, Settings().inference_threads) == (2, 2)


def test_training_steps_leave_a_core_to_the_batch_thread():
    assert threads.step_threads(2, batch_thread=True) == 1  # the augmenting thread has the other core
    assert threads.step_threads(4, batch_thread=True) == 3
    assert threads.step_threads(1, batch_thread=True) == 1  # never below one
    assert threads.step_threads(2, batch_thread=False) == 2  # batches from the cache: no thread beside


def test_torch_threads_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    with threads.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), threads.torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("cap, native", [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", None), ("", None)])
def test_bf16_follows_a_onednn_isa_cap(monkeypatch, cap, native):
    """An ISA cap below AVX512-BF16 makes the trainer treat the CPU as that ISA (fp32): how a newer machine stands
    in for an AVX2-only one. Without a cap, or with one that keeps bf16, the CPU's own answer stands."""
    from emovox.training import trainer

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    own = trainer.bf16_available()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert trainer.bf16_available() is (own if native is None else native)


def test_machine_names_the_cpu_family_and_model():
    """VMs often call the CPU only "AMD EPYC": its family and model tell the kinds apart beside every figure."""
    from emovox.training.data import machine

    cpuinfo = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
               "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\nprocessor\t: 1\ncpu family\t: 99\nmodel\t\t: 9\n")
    assert machine(cpuinfo).startswith("AMD EPYC family 26 model 2 (avx2 avx512f avx512_bf16), ")
    assert machine("model name\t: Some CPU\nflags\t\t: sse2\n").startswith("Some CPU (no AVX2), ")
