"""Helpers for the server tests: a real `emovox serve` process on a free loopback port, audio."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "emovox" / "assets" / "examples"
KEY = "test-key-123"  # the API key of the test server (tests/conftest.py: serve_url)
ANGRY = EXAMPLES / "03-01-05-02-01-01-05.flac"  # RAVDESS actor 05, strong "angry" (bundled example)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(*args: str, env: dict | None = None, ready_timeout: float = 90.0):
    """Start ``emovox serve ARGS`` on 127.0.0.1 and yield its base URL once /readyz says ready."""
    port = free_port()
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    for var in [v for v in environ if v.startswith("EMOVOX_") and v not in (env or {})]:
        del environ[var]  # the flags alone say how the server runs
    cmd = [sys.executable, "-m", "emovox.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"emovox serve exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("emovox serve did not become ready in time")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_wav(path: Path, wave: np.ndarray, rate: int = 16_000) -> Path:
    sf.write(str(path), wave.astype(np.float32), rate, subtype="PCM_16")
    return path


def conversation(path: Path, gap: float = 1.0) -> Path:
    """The bundled example clips one after the other with silences between (about 20 s)."""
    parts = []
    for clip in sorted(EXAMPLES.glob("*.flac")):
        x, rate = sf.read(str(clip), dtype="float32")
        parts += [x if x.ndim == 1 else x.mean(axis=1), np.zeros(int(gap * rate), np.float32)]
    return write_wav(path, np.concatenate(parts), rate)


def webm_opus(src: Path, path: Path) -> Path:
    """``src`` re-encoded as WebM/Opus, what a browser's MediaRecorder sends."""
    import av

    x, rate = sf.read(str(src), dtype="float32")
    x = x if x.ndim == 1 else x.mean(axis=1)
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for i in range(0, len(x), 4096):
            frame = av.AudioFrame.from_ndarray((x[None, i:i + 4096] * 32767).astype(np.int16), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
