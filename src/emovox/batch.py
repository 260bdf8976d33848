"""Results of a batch run, written as they come: an interrupted run keeps what it finished.

A results file is CSV (one row per file: path, answer, label, uncertain, speech,
speech_seconds, every probability, error), JSON Lines (one object per file, always the same
keys) or JSON (an array of those objects). A file without speech has the answer ``no_speech``
and no label or probabilities; an unreadable file has only its path and error.
:class:`Printer` prints the same rows to the terminal (or a table for people).

A results file is an append-only journal: each row is one line, written whole and flushed (and
fsynced at least once a second and on close), so a crash (even SIGKILL) can only cut off the
last line. Reopened with ``resume=True``, a cut last line is truncated away (in place: the rows
before it are never rewritten) and the paths already there are skipped. A JSON array cannot be
appended to, so a ``.json`` results file is written whole (atomically) when the run ends or is
interrupted, and rewritten with the new rows on ``resume``; only the line formats survive a
crash. One process at a time writes a results file (a :class:`~emovox.safeio.FileLock`).

Sharding splits a batch across processes or machines (:func:`shard`), each with its own
results file (:func:`shard_path`); :func:`merge` joins those files into one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from pathlib import Path

from .audio import AudioError
from .safeio import FileLock, atomic_path, atomic_write_text

FORMATS = ("csv", "jsonl", "json")
#: seconds between fsyncs of a results file (each row is flushed to the OS at once)
FSYNC_INTERVAL = 1.0
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
        raise ValueError(f"results file {path}: use a .json, .csv or .jsonl name (or --format json|csv|jsonl)")
    return fmt


def result_row(source, result) -> dict:
    """A results-file row: a prediction's :meth:`~emovox.inference.Prediction.to_dict` or, for an
    unreadable file, its path and error (the same keys either way)."""
    if isinstance(result, AudioError):
        return {**dict.fromkeys(FIELDS), "probabilities": None, "path": str(source), "error": result.reason}
    return {**result.to_dict(), "path": str(source), "error": None}


def json_array(rows) -> str:
    """Rows as a JSON array, one row per line (what ``--format json`` prints, row by row)."""
    return "[" + ",".join("\n  " + json.dumps(r) for r in rows) + ("\n]\n" if rows else "]\n")


def table_line(pred) -> str:
    """``predict``'s line for a person: path, answer, confidence and the runners-up."""
    if not pred.speech:
        return f"{pred.path}\t{pred.answer:<9} -      ({pred.speech_seconds:.2f} s of speech heard)"
    top = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:3]
    others = "  ".join(f"{k} {v:.2f}" for k, v in top[1:])
    guess = f"best guess {pred.label}; " if pred.uncertain else ""
    return f"{pred.path}\t{pred.answer:<9} {pred.confidence:.2f}   ({guess}{others})"


class Printer:
    """Predictions printed as they come: a table, a JSON array (valid once closed, even after an
    interruption), JSON Lines or CSV. Unreadable files print nothing: the caller lists them."""

    def __init__(self, fmt: str, labels, stream=None) -> None:
        self.fmt, self.labels, self.first = fmt, list(labels), True
        self.stream = stream or sys.stdout
        if fmt == "csv":
            self.csv = csv.writer(self.stream)
            self.csv.writerow(csv_columns(self.labels))
        elif fmt == "json":
            self.stream.write("[")

    def write(self, source, result) -> None:
        if isinstance(result, AudioError):
            return
        if self.fmt == "json":
            self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps(result.to_dict()))
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(result.to_dict()) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow(csv_cells(result.to_dict(), self.labels))
        else:
            self.stream.write(table_line(result) + "\n")
        self.first = False
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if not self.first else "]\n")


class ResultsFile:
    """Append predictions (or errors) to ``path``; ``done`` holds the paths already there."""

    def __init__(self, path: str | os.PathLike, labels, *, fmt: str | None = None, resume: bool = False) -> None:
        self.path = Path(path)
        self.labels = list(labels)
        self.fmt = format_of(self.path, fmt)
        self.columns = [*csv_columns(self.labels), "error"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path).acquire()  # LockError: another process writes it
        try:
            exists = self.path.exists() and self.path.stat().st_size > 0
            if exists and not resume:
                raise FileExistsError(f"{self.path} exists; pass --resume to continue that run, or choose another file")
            self._rows: list[dict] = []  # JSON: every row, written whole on close
            self.done: set[str] = self._read_done() if exists else set()
            exists = self.path.exists() and self.path.stat().st_size > 0  # a cut header is gone
            self._file = None if self.fmt == "json" else open(self.path, "a", newline="", encoding="utf-8")
        except BaseException:
            self._lock.release()
            raise
        self._synced = time.monotonic()
        self._closed = False
        if self.fmt == "csv":
            self._csv = csv.writer(self._file)
            if not exists:
                self._csv.writerow(self.columns)
                self._sync(force=True)

    def _read_done(self) -> set[str]:
        data = self.path.read_bytes()
        if self.fmt != "json" and not data.endswith(b"\n"):  # the last row was cut off mid-write: cut it away in place
            data = data[: data.rfind(b"\n") + 1]
            os.truncate(self.path, len(data))
        if not data:
            return set()
        columns, rows = _parse(self.path, data, drop_bad_last=True, fmt=self.fmt)
        if self.fmt == "csv" and columns != self.columns:
            raise ValueError(f"{self.path} is not a results file for this model, --emotions list and emovox "
                             "version (its columns differ)")
        if self.fmt != "csv":
            labels = next((list(r["probabilities"]) for r in rows if r.get("probabilities")), None)
            if labels is not None and labels != self.labels:
                raise ValueError(f"{self.path} is not a results file for this model and --emotions list "
                                 "(its labels differ)")
        if self.fmt == "json":
            self._rows = rows
        return {r["path"] for r in rows}

    def _sync(self, force: bool = False) -> None:
        self._file.flush()
        if force or time.monotonic() - self._synced >= FSYNC_INTERVAL:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def write(self, source, result) -> None:
        row = result_row(source, result)
        if self.fmt == "json":
            self._rows.append(row)
        elif self.fmt == "csv":
            self._csv.writerow([*csv_cells(row, self.labels), row["error"] or ""])
            self._sync()
        else:
            self._file.write(json.dumps(row) + "\n")
            self._sync()
        self.done.add(row["path"])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.fmt == "json":
                atomic_write_text(self.path, json_array(self._rows))
            else:
                self._sync(force=True)
        finally:
            if self._file is not None:
                self._file.close()
            self._lock.release()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- reading results files


def _parse(path: Path, data: bytes, *, drop_bad_last: bool = False,
           fmt: str | None = None) -> tuple[list[str] | None, list[dict]]:
    """``(CSV columns or None, rows as dicts)`` of a results file's bytes.

    A last line that does not parse (a crash cut it, or a disk filled) is dropped when
    ``drop_bad_last`` (and truncated away from the file); anywhere else it is an error.
    """
    fmt = format_of(path, fmt)
    if fmt == "json":  # written whole, atomically: it parses, or it is not a results file
        try:
            rows = json.loads(data.decode("utf-8"))
        except ValueError as err:
            raise ValueError(f"{path}: not a JSON results file ({err})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("path"), str) for r in rows):
            raise ValueError(f"{path}: not a JSON results file (an array of rows with a path)")
        return None, rows
    lines = data.decode("utf-8", errors="strict").splitlines(keepends=True)
    if fmt == "csv":
        table = list(csv.reader(io.StringIO("".join(lines))))
        if not table:
            return None, []
        columns, body = table[0], [r for r in table[1:] if r]
        bad = [i for i, r in enumerate(body) if len(r) != len(columns)]
        if bad and drop_bad_last and bad == [len(body) - 1]:
            body = body[:-1]
            _cut_last_line(path, data)
        elif bad:
            raise ValueError(f"{path}: row {bad[0] + 2} has {len(body[bad[0]])} fields, the header {len(columns)}")
        return columns, [dict(zip(columns, r)) for r in body]
    rows = []
    lines = [ln for ln in lines if ln.strip()]
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                raise ValueError("not a results row")
        except ValueError as err:
            if drop_bad_last and i == len(lines) - 1:
                _cut_last_line(path, data)
                break
            raise ValueError(f"{path}: line {i + 1} is not a results row ({err})") from None
        rows.append(row)
    return None, rows


def _cut_last_line(path: Path, data: bytes) -> None:
    body = data.rstrip(b"\n")
    os.truncate(path, body.rfind(b"\n") + 1)


# ---------------------------------------------------------------- sharding


def parse_shard(spec: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)``: shard K (counted from 0, as torchrun's RANK) of N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not m:
        raise ValueError(f"--shard {spec!r}: expected K/N, e.g. 0/4 (shards are counted from 0 to N-1)")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {spec!r}: need 0 <= K < N (shards are counted from 0 to N-1)")
    return k, n


def shard_from_env(environ=None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` when torchrun (or another launcher) set them, else ``None``."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    return parse_shard(f"{environ['RANK']}/{environ['WORLD_SIZE']}")


def shard(files, k: int, n: int) -> list[str]:
    """Shard ``k`` of ``n``: every n-th file of the sorted, de-duplicated list, from the k-th.

    Deterministic whatever order the files were found in; the n shards are disjoint, cover
    the list, and differ in size by at most one file.
    """
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: need 0 <= k < n")
    return sorted(set(map(str, files)))[k::n]


_SHARD_NAME = re.compile(r"^(?P<stem>.*)\.shard-(?P<k>\d+)-of-(?P<n>\d+)$")


def shard_path(output: str | os.PathLike, k: int, n: int) -> Path:
    """The results file of shard ``k`` of ``n``: ``out.jsonl`` → ``out.shard-2-of-4.jsonl``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shard-{k}-of-{n}{output.suffix}")


# ---------------------------------------------------------------- merging


def merge(inputs, output: str | os.PathLike, *, fmt: str | None = None, partial: bool = False) -> int:
    """Join results files (the shards of one run) into ``output``, rows sorted by path.

    Refuses inputs whose columns (CSV) or labels (JSON, JSONL) differ, a path that appears twice,
    an output that already exists, and, for files named by :func:`shard_path`, a missing
    shard (unless ``partial``). ``output`` is written atomically. Returns the number of rows.
    """
    inputs = [Path(p) for p in inputs]
    output = Path(output)
    if not inputs:
        raise ValueError("merge: no results files given")
    out_fmt = format_of(output, fmt)
    if output.exists():
        raise FileExistsError(f"{output} exists; choose another name (merge never overwrites)")
    if any(p.resolve() == output.resolve() for p in inputs):
        raise ValueError(f"{output} is one of the inputs")
    _check_shards(inputs, partial)
    columns, labels, rows, seen = None, None, [], {}
    for p in inputs:
        if format_of(p) != out_fmt:
            raise ValueError(f"{p}: a .{format_of(p)} file cannot be merged into a .{out_fmt} one")
        with FileLock(p):  # refused while a predict still writes it
            cols, file_rows = _parse(p, p.read_bytes())
        if out_fmt == "csv":
            if cols is None:
                raise ValueError(f"{p}: empty, not a results file")
            if columns is None:
                columns = cols
            elif cols != columns:
                raise ValueError(f"{p}: its columns differ from {inputs[0]}'s ({', '.join(cols)} vs "
                                 f"{', '.join(columns)}): results of another model?")
        else:
            for r in file_rows:
                got = list(r["probabilities"]) if r.get("probabilities") else None
                if got is not None and labels is None:
                    labels, first = got, p
                elif got is not None and got != labels:
                    raise ValueError(f"{p}: its labels differ from {first}'s ({', '.join(got)} vs "
                                     f"{', '.join(labels)}): results of another model?")
        for r in file_rows:
            if r["path"] in seen:
                raise ValueError(f"{r['path']} is in both {seen[r['path']]} and {p}" if seen[r["path"]] != p
                                 else f"{r['path']} is twice in {p}")
            seen[r["path"]] = p
            rows.append(r)
    rows.sort(key=lambda r: r["path"])
    with atomic_path(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        if out_fmt == "csv":
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows([r[c] for c in columns] for r in rows)
        elif out_fmt == "json":
            f.write(json_array(rows))
        else:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return len(rows)


def _check_shards(inputs: list[Path], partial: bool) -> None:
    named = [_SHARD_NAME.match(p.stem) for p in inputs]
    if not all(named):
        return
    groups = {(m["stem"], int(m["n"])) for m in named}
    if len(groups) > 1:
        raise ValueError("merge: these shard files come from different runs or shard counts: "
                         + ", ".join(f"{s} (of {n})" for s, n in sorted(groups)))
    (_, n), = groups
    have = {int(m["k"]) for m in named}
    missing = sorted(set(range(n)) - have)
    if missing and not partial:
        raise ValueError(f"merge: shard(s) {', '.join(map(str, missing))} of {n} missing "
                         "(pass --partial to merge what is there)")
