"""Live input sources for the timeline engine: a microphone (PortAudio via sounddevice) or a
file played as if it were one. Both are plain iterators of mono float32 blocks at the working
rate, so the engine, the display (:mod:`emovox.live_display`) and the tests do not care where
audio comes from."""

from __future__ import annotations

import queue
import time
from typing import Iterator

import numpy as np
import soxr

from . import audio


class MicrophoneError(RuntimeError):
    """No usable microphone: PortAudio missing, no input device, or the device refused."""


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as err:  # the Python package is there, the PortAudio library is not
        raise MicrophoneError(f"PortAudio is not installed ({err}); on Debian/Ubuntu: apt install libportaudio2, "
                              "on macOS: brew install portaudio") from None
    except ImportError:
        raise MicrophoneError("sounddevice is not installed: pip install sounddevice") from None
    return sd


class Microphone:
    """Blocks from an input device, opened at construction (so a missing device fails before
    anything is displayed) and closed by :meth:`close` or at the end of a ``with`` block.

    The PortAudio callback only copies samples into a queue; downmixing and resampling to
    16 kHz happen in the consumer. If the consumer falls more than ``max_queue_seconds``
    behind, the newest audio is dropped and counted in :attr:`dropped_samples`.
    """

    def __init__(self, device: int | str | None = None, block_seconds: float = 0.25,
                 max_queue_seconds: float = 30.0) -> None:
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as err:
            raise MicrophoneError(f"no input device {device!r}: {err}") from None
        self.name = info["name"]
        self.rate = int(info["default_samplerate"])
        self.dropped_samples = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, int(max_queue_seconds / block_seconds)))
        self._resampler = soxr.ResampleStream(self.rate, audio.WORKING_RATE, 1, dtype="float32") \
            if self.rate != audio.WORKING_RATE else None
        try:
            self._stream = sd.InputStream(device=device, channels=1, samplerate=self.rate,
                                          blocksize=max(1, int(self.rate * block_seconds)), dtype="float32",
                                          callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as err:
            raise MicrophoneError(f"cannot open input device {self.name!r}: {err}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self.dropped_samples += frames

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            block = self._queue.get()
            x = np.asarray(block.mean(axis=1) if block.ndim == 2 else block, np.float32)
            if self._resampler is not None:
                x = self._resampler.resample_chunk(x)
            if len(x):
                yield x

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def __enter__(self) -> "Microphone":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_blocks(path, block_seconds: float = 0.25, realtime: bool = True) -> Iterator[np.ndarray]:
    """A recording delivered like a microphone: blocks of ``block_seconds``, paced at real
    time unless ``realtime=False``."""
    t0 = time.perf_counter()
    sent = 0
    for big in audio.stream(path, audio.WORKING_RATE, block_seconds=max(block_seconds, 5.0)):
        step = max(1, int(block_seconds * audio.WORKING_RATE))
        for s in range(0, len(big), step):
            block = big[s:s + step]
            if realtime:
                wait = t0 + sent / audio.WORKING_RATE - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            sent += len(block)
            yield block
