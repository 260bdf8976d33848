"""Results of a batch run, written as they come: an interrupted run keeps what it finished.

A results file is CSV (one row per file: path, answer, label, uncertain, speech,
speech_seconds, every probability, error) or JSON Lines (one object per file, always the same
keys). A file without speech has the answer ``no_speech`` and no label or probabilities; an
unreadable file has only its path and error. Each row is flushed when written. Reopened with
``resume=True``, the paths already in it are skipped, and a last line cut off by the
interruption is dropped first.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .audio import AudioError

FORMATS = ("csv", "jsonl")
#: The fields of a prediction row before the probabilities (CSV: one column per emotion).
FIELDS = ("path", "answer", "label", "uncertain", "speech", "speech_seconds")


def csv_columns(labels) -> list[str]:
    return [*FIELDS, *labels]


def csv_cells(row: dict, labels) -> list[str]:
    """A row of :meth:`Prediction.to_dict` (or an error row) as CSV cells: empty for ``None``,
    booleans as 0/1, probabilities with 4 decimals."""
    def cell(v):
        return "" if v is None else str(int(v)) if isinstance(v, bool) else str(v)

    probs = row.get("probabilities") or {}
    return [*(cell(row.get(k)) for k in FIELDS), *(f"{probs[k]:.4f}" if k in probs else "" for k in labels)]


def format_of(path: str | os.PathLike, fmt: str | None = None) -> str:
    fmt = fmt or Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"results file {path}: use a .csv or .jsonl name (or --format csv|jsonl)")
    return fmt


class ResultsFile:
    """Append predictions (or errors) to ``path``; ``done`` holds the paths already there."""

    def __init__(self, path: str | os.PathLike, labels, *, fmt: str | None = None, resume: bool = False) -> None:
        self.path = Path(path)
        self.labels = list(labels)
        self.fmt = format_of(self.path, fmt)
        self.columns = [*csv_columns(self.labels), "error"]
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not resume:
            raise FileExistsError(f"{self.path} exists; pass --resume to continue that run, or choose another file")
        self.done: set[str] = self._read_done() if exists else set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        if self.fmt == "csv":
            self._csv = csv.writer(self._file)
            if not exists:
                self._csv.writerow(self.columns)
                self._file.flush()

    def _read_done(self) -> set[str]:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # the last row was cut off mid-write
            data = data[: data.rfind(b"\n") + 1]
            self.path.write_bytes(data)
        lines = data.decode("utf-8").splitlines()
        if self.fmt == "csv":
            rows = list(csv.reader(lines))
            if not rows or rows[0] != self.columns:
                raise ValueError(f"{self.path} is not a results file for this model and emovox version "
                                 "(its columns differ)")
            return {r[0] for r in rows[1:] if r}
        return {json.loads(line)["path"] for line in lines if line.strip()}

    def write(self, source, result) -> None:
        path = str(source)
        if isinstance(result, AudioError):
            row = {**dict.fromkeys(FIELDS), "probabilities": None, "path": path, "error": result.reason}
        else:
            row = {**result.to_dict(), "path": path, "error": None}
        if self.fmt == "csv":
            self._csv.writerow([*csv_cells(row, self.labels), row["error"] or ""])
        else:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        self.done.add(path)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
