"""The rolling display of ``emovox listen``: a rich live panel on a terminal, one plain line
per finished cell otherwise (pipes, logs, tests). Imports neither torch nor matplotlib, so
``listen --backend onnx`` stays light. Its audio comes from :mod:`emovox.live_input`."""

from __future__ import annotations

import sys
from collections import deque

import numpy as np

from .labels import EMOTION_COLORS
from .timeline import SILENCE, UNCERTAIN, Cell

BAR = 28


class LiveDisplay:
    def __init__(self, labels, *, plain: bool = False, smooth: int = 3, history: int = 8, stream=None) -> None:
        self.labels = list(labels)
        self.plain = plain
        self.out = stream or sys.stdout
        self.recent: deque = deque(maxlen=max(1, smooth))
        self.segments: deque = deque(maxlen=history)  # [start, end, label]
        self._live = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> "LiveDisplay":
        if not self.plain:
            from rich.live import Live

            self._live = Live(self._render(None, None), refresh_per_second=4, transient=False)
            self._live.__enter__()
        else:
            print("listening (Ctrl-C to stop); one line per timeline cell, about one window "
                  "(2.5 s) behind", file=self.out, flush=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    # ---------------------------------------------------------------- updates
    def update(self, cell: Cell, engine) -> None:
        min_speech, min_conf = engine.config.min_speech, engine.config.min_confidence
        if cell.probabilities is None or cell.speech < min_speech:
            self.recent.clear()
            label, probs = SILENCE, None
        else:
            self.recent.append(cell.probabilities)
            probs = np.mean(self.recent, axis=0)
            label = self.labels[int(probs.argmax())] if probs.max() >= min_conf else UNCERTAIN
        if self.segments and self.segments[-1][2] == label:
            self.segments[-1][1] = cell.end
        else:
            self.segments.append([cell.start, cell.end, label])
        if self.plain:
            top = "" if probs is None else "  " + "  ".join(
                f"{self.labels[i]} {probs[i]:.2f}" for i in np.argsort(probs)[::-1][:3])
            print(f"{cell.start:8.1f}s  {label:<10}{top}", file=self.out, flush=True)
        elif self._live is not None:
            self._live.update(self._render(cell, probs if probs is not None else None, label))

    def _render(self, cell, probs, label: str | None = None):
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right")
        table.add_column()
        table.add_column(justify="right")
        for i, lab in enumerate(self.labels):
            p = 0.0 if probs is None else float(probs[i])
            bar = Text("█" * int(round(p * BAR)), style=EMOTION_COLORS.get(lab, "white"))
            table.add_row(Text(lab, style="bold" if lab == label else ""), bar, f"{p:.2f}")
        head = Text("waiting for audio…" if cell is None else f"{cell.end:7.1f} s   ")
        if label is not None:
            head.append(label.upper(), style=f"bold {EMOTION_COLORS.get(label, 'white')}" if label not in
                        (SILENCE, UNCERTAIN) else "dim")
        recent = Text("  ".join(f"{s:.0f}-{e:.0f}s {lab}" for s, e, lab in self.segments), style="dim")
        body = Table.grid()
        body.add_row(head)
        body.add_row(table)
        body.add_row(recent)
        return Panel(body, title="emovox listen", subtitle="Ctrl-C to stop", expand=False)

    def summary(self, timeline, interrupted: bool) -> None:
        speech = [s for s in timeline.segments if s.label != SILENCE]
        print(f"{'stopped' if interrupted else 'end of input'} after {timeline.duration:.1f} s: "
              f"{len(speech)} speech segment(s)", file=self.out, flush=True)
