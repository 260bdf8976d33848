"""Results of a batch run, written as they come: an interrupted run keeps what it finished.

A results file is CSV (one row per file: path, label, uncertain, every probability, error) or
JSON Lines (one object per file). Each row is flushed when written. Reopened with
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
        self.columns = ["path", "label", "uncertain", *self.labels, "error"]
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
                raise ValueError(f"{self.path} is not a results file for this model (its columns differ)")
            return {r[0] for r in rows[1:] if r}
        return {json.loads(line)["path"] for line in lines if line.strip()}

    def write(self, source, result) -> None:
        path = str(source)
        if isinstance(result, AudioError):
            row = {"path": path, "label": None, "uncertain": None, "error": result.reason}
        else:
            row = {"path": path, "label": result.label, "uncertain": result.uncertain,
                   "probabilities": result.probabilities, "error": None}
        if self.fmt == "csv":
            probs = row.get("probabilities") or {}
            self._csv.writerow([path, row["label"] or "", "" if row["uncertain"] is None else int(row["uncertain"]),
                                *(f"{probs[k]:.4f}" if k in probs else "" for k in self.labels), row["error"] or ""])
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
