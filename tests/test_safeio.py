"""Atomic writes and one-writer locks (results files, run folders)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from emovox.batch import ResultsFile
from emovox.cli import main
from emovox.safeio import FileLock, LockError, atomic_path, atomic_write_text

HOLD = ("import sys, time\nfrom emovox.safeio import FileLock\n"
        "FileLock(sys.argv[1], inside=sys.argv[2] == 'inside').acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")


def _holder(target, inside=False):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "inside" if inside else "beside"],
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "held"
    return child


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_a_second_writer_is_refused_naming_the_holder_then_a_dead_holder_is_taken_over(tmp_path, caplog):
    out = tmp_path / "r.jsonl"
    child = _holder(out)
    try:
        with pytest.raises(LockError, match=rf"being written by process {child.pid}\b") as info:
            ResultsFile(out, ["a", "b"])
        assert info.value.pid == child.pid
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with caplog.at_level(logging.WARNING, logger="emovox.safeio"):
        with ResultsFile(out, ["a", "b"]) as w:
            assert w._lock.took_over == child.pid
    assert f"stale lock {out}.lock of process {child.pid} (no longer running)" in caplog.text
    assert not (tmp_path / "r.jsonl.lock").exists()


def test_a_stale_lock_file_with_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    with FileLock(tmp_path / "run", inside=True) as lock:
        assert lock.took_over == dead.pid
        assert (tmp_path / "run" / ".lock").read_text().split()[0] == str(os.getpid())
        with pytest.raises(LockError):  # a second lock, even in this process, is refused
            FileLock(tmp_path / "run", inside=True).acquire()


def test_two_trainings_of_one_run_folder_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    child = _holder(run, inside=True)
    try:
        start = time.monotonic()
        assert main(["train", "--out", str(run)]) == 2
        assert time.monotonic() - start < 10  # refused before any data is read
        assert f"being written by process {child.pid}" in capsys.readouterr().err
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_atomic_writes_get_the_mode_open_would_give(tmp_path):
    """Not mkstemp's private 0600: a model folder written by one user must be readable by a server
    running as another, as the umask allows."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
