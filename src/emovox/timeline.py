"""Long recordings as an emotion timeline, offline or live, from one streaming engine.

The recording is cut into *cells* of ``hop`` seconds. Silero VAD marks each cell speech or
silence. Windows of ``window`` seconds start at every cell; a window holding at least
``min_speech × hop`` seconds of speech goes through the model (the same
:class:`~emovox.pipeline.ClipClassifier` path as ``predict``). A speech cell's probabilities
are the mean of the windows that overlap it, weighted by overlap, then smoothed over
``smooth`` neighbouring speech cells; consecutive cells with the same answer merge into
segments. :class:`TimelineEngine` takes audio in blocks of any size, so a file read block by
block, an array and a microphone give the same timeline, and memory stays flat: only the
current window's audio is kept.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from .adaptation import RunningReference, centre_answers
from .audio import WORKING_RATE
from .labels import check_emotions, fold_into
from .vad import FRAME, SpeechDetector

SILENCE = "silence"
UNCERTAIN = "uncertain"
ENVELOPE_RATE = 100  # waveform min/max points per second kept for plots


@dataclass(frozen=True)
class TimelineConfig:
    """How a recording becomes a timeline.

    Parameters
    ----------
    window : seconds of audio per prediction; ``None`` uses the model's input length (2.5 s).
    hop : seconds between window starts, and the timeline's resolution; ``None``: half the
        window (1.25 s), the overlap ``predict`` uses inside a clip.
    min_speech : a cell is speech when at least this fraction of it is voiced.
    smooth : moving average of cell probabilities over this many speech cells (1: none).
    min_confidence : below this top probability a speech cell is ``"uncertain"``.
    vad_threshold : silero VAD speech threshold.
    """

    window: float | None = None
    hop: float | None = None
    min_speech: float = 0.25
    smooth: int = 3
    min_confidence: float = 0.0
    vad_threshold: float = 0.5

    def check(self, window: float) -> None:
        if self.hop is None or not 0 < self.hop <= window:
            raise ValueError(f"hop must be positive and at most the window ({window} s), got {self.hop}")
        if not 0 < self.min_speech <= 1:
            raise ValueError(f"min_speech must be in (0, 1], got {self.min_speech}")
        if self.smooth < 1:
            raise ValueError(f"smooth must be at least 1, got {self.smooth}")
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence}")


@dataclass
class Cell:
    """One ``hop`` of the timeline, final once every window over it has been seen."""

    index: int
    start: float
    end: float
    speech: float                      # voiced fraction (VAD)
    probabilities: np.ndarray | None   # mean of the overlapping windows, None if none was classified


@dataclass
class Segment:
    start: float
    end: float
    label: str
    confidence: float

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "confidence": round(float(self.confidence), 4)}


@dataclass
class Timeline:
    """The result: per-cell probabilities and speech, and the merged segments."""

    labels: tuple[str, ...]
    config: TimelineConfig
    duration: float
    starts: np.ndarray          # [cells] seconds
    ends: np.ndarray            # [cells]
    speech: np.ndarray          # [cells] voiced fraction
    probabilities: np.ndarray   # [cells, classes], smoothed; NaN for silent cells
    envelope: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2), np.float32))
    source: str | None = None

    @property
    def cell_labels(self) -> list[str]:
        return [cell_label(s, p, self.labels, self.config) for s, p in zip(self.speech, self.probabilities)]

    @property
    def segments(self) -> list[Segment]:
        return merge_segments(self.starts, self.ends, self.cell_labels, self.probabilities, self.speech, self.labels)

    def to_dict(self) -> dict:
        return {"source": self.source, "duration": round(self.duration, 3), "labels": list(self.labels),
                "config": self.config.__dict__, "segments": [s.to_dict() for s in self.segments],
                "cells": [{"start": round(float(a), 3), "end": round(float(b), 3), "speech": round(float(v), 3),
                           "label": lab, "probabilities": None if np.isnan(p).any()
                           else {k: round(float(x), 4) for k, x in zip(self.labels, p)}}
                          for a, b, v, lab, p in zip(self.starts, self.ends, self.speech, self.cell_labels,
                                                      self.probabilities)]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per segment: start, end, label, confidence."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["start", "end", "label", "confidence"])
        for s in self.segments:
            w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.confidence:.4f}"])
        return out.getvalue()

    def to_table(self) -> str:
        """The segments for a person: start and end as clock times, label, confidence."""
        lines = [f"{'start':>8} {'end':>8}  {'emotion':<10} confidence"]
        for s in self.segments:
            lines.append(f"{clock(s.start):>8} {clock(s.end):>8}  {s.label:<10} {s.confidence:.2f}")
        return "\n".join(lines) + "\n"

    def render(self, fmt: str) -> str:
        """The timeline as ``json`` (every cell's probabilities), ``csv`` or ``table`` (segments)."""
        renderers = {"json": lambda: self.to_json() + "\n", "csv": self.to_csv, "table": self.to_table}
        if fmt not in renderers:
            raise ValueError(f"timeline format {fmt!r}: expected one of {', '.join(renderers)}")
        return renderers[fmt]()


def clock(seconds: float) -> str:
    """``75.3`` → ``"1:15.3"``; an hour or more → ``"1:02:03.0"``."""
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}" if m < 60 else f"{int(m // 60)}:{int(m % 60):02d}:{s:04.1f}"


def cell_label(speech: float, probs: np.ndarray, labels, config: TimelineConfig) -> str:
    if speech < config.min_speech or np.isnan(probs).any():
        return SILENCE
    return labels[int(np.argmax(probs))] if probs.max() >= config.min_confidence else UNCERTAIN


def merge_segments(starts, ends, cell_labels: list[str], probs: np.ndarray, speech: np.ndarray,
                   labels) -> list[Segment]:
    """Runs of equal cell labels → segments. Confidence: the mean probability of the label over
    the run (for ``uncertain``, of each cell's top emotion; for silence, the unvoiced fraction)."""
    segments: list[Segment] = []
    i = 0
    while i < len(cell_labels):
        j = i
        while j + 1 < len(cell_labels) and cell_labels[j + 1] == cell_labels[i]:
            j += 1
        lab = cell_labels[i]
        if lab == SILENCE:
            conf = 1.0 - float(np.mean(speech[i:j + 1]))
        elif lab == UNCERTAIN:
            conf = float(np.mean(probs[i:j + 1].max(axis=1)))
        else:
            conf = float(np.mean(probs[i:j + 1, labels.index(lab)]))
        segments.append(Segment(float(starts[i]), float(ends[j]), lab, conf))
        i = j + 1
    return segments


def smooth_cells(probs: np.ndarray, speech_mask: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``probs`` over ``width`` cells, within runs of speech cells
    (silence is a boundary); silent cells become NaN."""
    out = np.full_like(probs, np.nan)
    half = width // 2
    i, n = 0, len(probs)
    while i < n:
        if not speech_mask[i]:
            i += 1
            continue
        j = i
        while j < n and speech_mask[j]:
            j += 1
        run = probs[i:j]
        for k in range(len(run)):
            out[i + k] = run[max(0, k - half):k + half + 1].mean(axis=0)
        i = j
    return out


class TimelineEngine:
    """Streaming timeline: :meth:`push` blocks of 16 kHz mono samples, get finished cells back;
    :meth:`finish` returns the :class:`Timeline`. ``backend`` is a Recognizer backend
    (torch or ONNX): ``analyse(wave)`` then ``probabilities([...])``. ``speaker``: a speaker
    reference (``Recognizer.speaker_reference``) every window is judged against.
    ``collect``: a first pass that takes a recording's speaker reference from exactly the
    windows the second pass judges: the speech windows are kept in :attr:`collected` instead of
    turned into cells — analysed (``True``, for a model that takes feature statistics), or their
    probabilities (``"answers"``, for one adapted on its answers), which the second pass then
    replays (``replay``) instead of running the model again. ``running``: one speaker throughout a
    live session, each speech window judged against the mean answer of the speech windows so far
    (:class:`emovox.adaptation.RunningReference`) from the ``running``-th on; 0: off. ``emotions``:
    cells and segments among these emotions only (:func:`emovox.labels.fold_into`; references
    and the collecting pass keep the model's own)."""

    def __init__(self, backend, config: TimelineConfig | None = None, *, clip_seconds: float = 2.5,
                 batch_windows: int = 8, source: str | None = None, speaker=None, collect: bool | str = False,
                 replay: list | None = None, running: int = 0, emotions=None) -> None:
        if running and (speaker is not None or collect or replay is not None):
            raise ValueError("a running speaker reference replaces a given one: pass one or the other")
        self.backend = backend
        self.speaker = speaker
        self.running = RunningReference(running, backend.labels) if running else None
        self.collected: list | None = [] if collect else None
        self._collect_answers = collect == "answers"
        self._replay = iter(replay) if replay is not None else None
        self.model_labels = tuple(backend.labels)
        self.labels = check_emotions(emotions, self.model_labels) if emotions is not None else self.model_labels
        self.config = config = config or TimelineConfig()
        window = config.window if config.window is not None else clip_seconds
        hop = config.hop if config.hop is not None else window / 2
        self.config = TimelineConfig(**{**config.__dict__, "window": window, "hop": hop})
        self.config.check(window)
        if backend.sample_rate != WORKING_RATE:
            raise ValueError(f"the timeline runs at {WORKING_RATE} Hz; this model expects {backend.sample_rate} Hz")
        self.W = int(round(window * WORKING_RATE))
        self.H = int(round(self.config.hop * WORKING_RATE))
        self.batch_windows = batch_windows
        self.source = source
        self.vad = SpeechDetector(self.config.vad_threshold)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0          # absolute index of _buf[0]
        self._total = 0              # samples received
        self._vad_frames = 0         # VAD frames decided
        self._voiced: dict[int, list[int]] = {}  # cell → [voiced frames, frames]
        self._next_window = 0
        self._next_cell = 0
        self._sum: dict[int, np.ndarray] = {}
        self._weight: dict[int, float] = {}
        self._cells: list[Cell] = []
        self._env: list[np.ndarray] = []
        self._env_rest = np.zeros(0, np.float32)
        self._finished = False

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self._total / WORKING_RATE

    # ------------------------------------------------------------------ input
    def push(self, block: np.ndarray) -> list[Cell]:
        """Add samples (16 kHz mono float32); returns the cells this completed."""
        if self._finished:
            raise RuntimeError("the timeline is finished; start a new engine")
        x = np.asarray(block, np.float32).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError("audio block contains NaN or infinite samples")
        self._buf = np.concatenate([self._buf, x])
        self._total += len(x)
        self._envelope(x)
        self._add_vad(*self.vad.push(x))
        return self._advance(final=False)

    def finish(self) -> Timeline:
        """Close the stream: the last windows are classified (truncated at the end)."""
        if not self._finished:
            self._envelope(None)
            self._add_vad(*self.vad.finish())
            self._advance(final=True)
            self._finished = True
            if self._replay is not None and next(self._replay, None) is not None:
                raise RuntimeError("the second pass of a speaker-adaptive timeline met fewer speech windows "
                                   "than the first")
        return self.timeline()

    def run(self, blocks: Iterable[np.ndarray]) -> Timeline:
        for b in blocks:
            self.push(b)
        return self.finish()

    # ------------------------------------------------------------------ state
    def _add_vad(self, probs: np.ndarray, flags: np.ndarray) -> None:
        for flag in flags:  # a frame counts for the cell holding its centre
            cell = (self._vad_frames * FRAME + FRAME // 2) // self.H
            acc = self._voiced.setdefault(cell, [0, 0])
            acc[0] += int(flag)
            acc[1] += 1
            self._vad_frames += 1

    def _speech_samples(self, start: int, end: int) -> float:
        """Voiced samples in [start, end), from the cells' voiced fractions."""
        total = 0.0
        for c in range(start // self.H, (end - 1) // self.H + 1):
            v, n = self._voiced.get(c, (0, 0))
            lo, hi = max(start, c * self.H), min(end, (c + 1) * self.H)
            total += (v / n if n else 0.0) * (hi - lo)
        return total

    def _advance(self, final: bool) -> list[Cell]:
        vad_end = self._vad_frames * FRAME
        ready = []
        while True:
            k = self._next_window
            start, end = k * self.H, k * self.H + self.W
            if start >= self._total or (final and k > 0 and start - self.H + self.W >= self._total):
                break  # no audio left for it, or the previous window already reached the end
            if not final:
                last_cell = (end - 1) // self.H  # its speech fraction needs every frame centred in it
                if end > self._total or vad_end < (last_cell + 1) * self.H + FRAME // 2:
                    break
            ready.append((k, start, min(end, self._total)))
            self._next_window += 1
        self._classify(ready)
        self._trim()
        return self._close_cells(final)

    def _classify(self, windows: list[tuple[int, int, int]]) -> None:
        need = self.config.min_speech * self.H
        todo = [(k, s, e) for k, s, e in windows if self._speech_samples(s, e) >= need - 1e-6]
        if self.collected is not None and not self._collect_answers:
            self.collected.extend(self.backend.analyse(self._buf[s - self._buf_start:e - self._buf_start])
                                  for _, s, e in todo)
            return
        for b in range(0, len(todo), self.batch_windows):
            chunk = todo[b:b + self.batch_windows]
            if self._replay is not None:  # the first pass's answers, judged against its reference
                probs = centre_answers(np.stack([self._replayed() for _ in chunk]), self.speaker)
            else:
                analysed = [self.backend.analyse(self._buf[s - self._buf_start:e - self._buf_start])
                            for _, s, e in chunk]
                probs = self.backend.probabilities(analysed, self.speaker) if self.speaker is not None \
                    else self.backend.probabilities(analysed)
            if self.collected is not None:
                self.collected.extend(probs)
                continue
            if self.running is not None:  # in time order: each window meets the speech before it and itself
                probs = [self.running.judge(p) for p in probs]
            if self.labels != self.model_labels:  # last: references above stay in the model's emotions
                probs = fold_into(np.stack(probs), self.model_labels, self.labels)
            for (k, s, e), p in zip(chunk, probs):
                for c in range(s // self.H, (e - 1) // self.H + 1):
                    overlap = min(e, (c + 1) * self.H) - max(s, c * self.H)
                    self._sum[c] = self._sum.get(c, 0) + overlap * np.asarray(p, np.float64)
                    self._weight[c] = self._weight.get(c, 0.0) + overlap

    def _replayed(self) -> np.ndarray:
        p = next(self._replay, None)
        if p is None:
            raise RuntimeError("the second pass of a speaker-adaptive timeline met more speech windows than the first")
        return p

    def _trim(self) -> None:
        keep_from = self._next_window * self.H  # nothing before the next window start is needed again
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from

    def _close_cells(self, final: bool) -> list[Cell]:
        n_cells = -(-self._total // self.H)
        last = n_cells if final else min(self._next_window, n_cells)  # cell c final once window c is done
        closed = []
        for c in range(self._next_cell, last):
            v, n = self._voiced.pop(c, (0, 0))
            w = self._weight.pop(c, 0.0)
            p = self._sum.pop(c, None)
            cell = Cell(c, c * self.H / WORKING_RATE, min((c + 1) * self.H, self._total) / WORKING_RATE,
                        v / n if n else 0.0, None if p is None or w == 0 else (p / w).astype(np.float32))
            self._cells.append(cell)
            closed.append(cell)
        self._next_cell = max(self._next_cell, last)
        return closed

    def _envelope(self, x: np.ndarray | None) -> None:
        step = WORKING_RATE // ENVELOPE_RATE
        rest = self._env_rest if x is None else np.concatenate([self._env_rest, x])
        n = len(rest) // step if x is not None else -(-len(rest) // step)
        if n:
            part = rest[:n * step]
            if len(part) < n * step:
                part = np.concatenate([part, np.full(n * step - len(part), part[-1], np.float32)])
            part = part.reshape(n, step)
            self._env.append(np.stack([part.min(1), part.max(1)], axis=1))
        self._env_rest = rest[n * step:] if x is not None else np.zeros(0, np.float32)

    # ------------------------------------------------------------------ output
    def timeline(self) -> Timeline:
        """The timeline of the cells finished so far (all of them after :meth:`finish`)."""
        cells = self._cells
        C = len(self.labels)
        raw = np.array([c.probabilities if c.probabilities is not None else np.full(C, np.nan) for c in cells],
                       np.float32).reshape(len(cells), C)
        speech = np.array([c.speech for c in cells], np.float32)
        mask = (speech >= self.config.min_speech) & ~np.isnan(raw).any(axis=1)
        return Timeline(self.labels, self.config, self._total / WORKING_RATE,
                        np.array([c.start for c in cells]), np.array([c.end for c in cells]), speech,
                        smooth_cells(raw, mask, self.config.smooth),
                        np.concatenate(self._env) if self._env else np.zeros((0, 2), np.float32), self.source)


def blocks_of(wave: np.ndarray, block: int) -> Iterator[np.ndarray]:
    """An array as consecutive blocks of ``block`` samples."""
    for s in range(0, len(wave), block):
        yield wave[s:s + block]
