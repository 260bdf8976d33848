"""Voice activity detection: Silero VAD's ONNX model, run incrementally on any block sizes.

The model ships inside the ``silero-vad`` wheel (MIT licence) and runs offline. We use its
"sequence" export (many 32 ms frames per onnxruntime call, the LSTM state carried between
calls) through onnxruntime directly, so neither torch nor silero's torchaudio-based helpers
are needed, and feeding a recording in any block sizes gives the same frame probabilities.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from .audio import WORKING_RATE

FRAME = 512      # samples per VAD frame: 32 ms at the working rate (audio.WORKING_RATE, silero's 16 kHz)
CONTEXT = 64     # samples of the previous frame the model sees before each frame
MODEL_FILE = "silero_vad_16k_sequence.onnx"
MAX_FRAMES = 512  # frames per onnxruntime call (16 s)
#: frames per call while deciding whether there is speech (0.26 s: a call costs about 40 µs, a frame 55 µs)
DECISION_FRAMES = 8
#: :func:`normalize_level` scales a recording's peak to this (-6 dBFS) ...
NORMALIZED_PEAK = 0.5
#: ... amplifying by at most this much (a 16-bit file's noise floor stays quiet).
MAX_GAIN_DB = 60.0


def model_path() -> Path:
    """The ONNX file inside the installed silero-vad package (found without importing it:
    its ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("silero-vad is not installed; `pip install silero-vad` (it ships the VAD model)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the silero-vad package; reinstall silero-vad>=6.2")
    return path


class SpeechDetector:
    """Streaming speech detection at 16 kHz.

    :meth:`push` takes samples in blocks of any size and returns the speech flags of the
    frames it completed; :meth:`finish` pads and closes the last frame. Flags use silero's
    hysteresis: a frame starts speech at ``threshold`` and speech continues down to
    ``threshold - 0.15``.
    """

    def __init__(self, threshold: float = 0.5, threads: int = 1) -> None:
        import onnxruntime as ort

        from .threads import onnx_session_options

        if not 0 < threshold < 1:
            raise ValueError(f"VAD threshold must be between 0 and 1, got {threshold}")
        self.session = ort.InferenceSession(str(model_path()), onnx_session_options(threads, ort),
                                            providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.release = max(0.01, threshold - 0.15)
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._speaking = False

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add samples; return ``(probabilities, speech flags)`` of each frame completed."""
        x = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        n = len(x) // FRAME
        self._pending = x[n * FRAME:]
        return self._run(x[:n * FRAME].reshape(n, FRAME))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Zero-pad and process the last partial frame (if any)."""
        if not len(self._pending):
            return np.zeros(0, np.float32), np.zeros(0, bool)
        frame = np.zeros((1, FRAME), np.float32)
        frame[0, :len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.float32)
        return self._run(frame)

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = []
        for s in range(0, len(frames), MAX_FRAMES):
            block = frames[s:s + MAX_FRAMES]
            context = np.concatenate([self._context[None], block[:-1, -CONTEXT:]])
            p, self._h, self._c = self.session.run(
                ["speech_probs", "hn", "cn"],
                {"input": np.concatenate([context, block], axis=1), "h": self._h, "c": self._c})
            self._context = block[-1, -CONTEXT:].copy()
            probs.append(p.reshape(-1))
        probs = np.concatenate(probs) if probs else np.zeros(0, np.float32)
        flags = np.zeros(len(probs), bool)
        for i, p in enumerate(probs):  # hysteresis: a short loop over 31 frames a second
            self._speaking = p >= (self.release if self._speaking else self.threshold)
            flags[i] = self._speaking
        return probs, flags


def normalize_level(wave: np.ndarray) -> np.ndarray:
    """``wave`` without its DC offset, scaled so its peak is :data:`NORMALIZED_PEAK` (gain at
    most :data:`MAX_GAIN_DB`).

    Silero hears quiet speech less: RAVDESS clips 20 dB quieter (16-bit) lost 85 of 1440 clips
    at a 0.5 threshold, 13 once normalised, the same as at their own level (12);
    ``benchmarks/nospeech.py``. For a whole recording, before :func:`speech_seconds`; a stream
    (the timeline) cannot know its peak in advance and is not normalised.
    """
    x = np.asarray(wave, np.float32)
    x = x - x.mean() if len(x) else x
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak == 0:
        return x
    return x * np.float32(min(NORMALIZED_PEAK / peak, 10 ** (MAX_GAIN_DB / 20)))


def speech_seconds(wave: np.ndarray, threshold: float = 0.5, detector: SpeechDetector | None = None, *,
                   enough: float | None = None) -> float:
    """Seconds of speech in a 16 kHz mono wave (frames flagged by :class:`SpeechDetector`).

    ``detector`` is reset and reused when given (creating one loads the ONNX model).
    ``enough``: stop listening as soon as this many seconds of speech were heard — a yes/no
    question needs no more — and return what was heard by then (at least ``enough``; the whole
    recording's speech only when it has less). The flags do not depend on block sizes, so the
    yes/no answer is the one the whole recording gives. The VAD was 6 ms of a 3.5 s RAVDESS clip's
    17 ms on one core; deciding at 0.3 s listens to about a third of a RAVDESS clip (its speech
    starts after about a second of silence).
    """
    detector = detector or SpeechDetector(threshold)
    detector.reset()
    if enough is None or not math.isfinite(enough):  # never enough: listen to all of it
        _, flags = detector.push(wave)
        _, last = detector.finish()
        return float(flags.sum() + last.sum()) * FRAME / WORKING_RATE
    needed = math.ceil(enough * WORKING_RATE / FRAME - 1e-9)  # frames
    heard = 0
    for start in range(0, len(wave), DECISION_FRAMES * FRAME):
        if heard >= needed:
            break
        heard += int(detector.push(wave[start:start + DECISION_FRAMES * FRAME])[1].sum())
    else:
        heard += int(detector.finish()[1].sum())
    return heard * FRAME / WORKING_RATE
