"""Your own recordings listed in a manifest: CSV or JSONL.

CSV: a header naming ``path`` and ``label``, optionally ``speaker`` and ``gender`` (other
columns are ignored). JSONL: one object per line with those keys. Paths are relative to the
manifest's folder (absolute ones are kept). Labels go through :data:`emovox.labels.SYNONYMS`;
gender is ``male``/``female`` (``m``/``f``, any case) or empty for "unknown". A row without a
speaker is its own speaker (``speaker_known=False``). A bad row, an unknown label or a missing
file is recorded in :attr:`Corpus.skipped` as ``("<manifest>:<line>", reason)``; the rest loads.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from emovox.corpora.base import Corpus, Utterance
from emovox.labels import from_synonym

COLUMNS: tuple[str, ...] = ("path", "label", "speaker", "gender")
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female", "": "unknown", "unknown": "unknown"}


def _csv_rows(file: Path) -> Iterator[tuple[int, dict | str]]:
    """``(line, row)`` of a CSV manifest; a string row is the reason it is bad."""
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in ("path", "label") if c not in header]
            if missing:
                raise ValueError(f"{file}: the header must name path and label (missing {', '.join(missing)}), "
                                 f"got {header[:10]}")
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    yield reader.line_num, f"{len(cells)} fields, the header has {len(header)}"
                    continue
                yield reader.line_num, dict(zip(header, cells))
        except csv.Error as err:  # e.g. a field over the csv module's size limit: the file is not a CSV
            raise ValueError(f"{file}:{reader.line_num}: not a readable CSV ({err})") from None


def _jsonl_rows(file: Path) -> Iterator[tuple[int, dict | str]]:
    with open(file, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield line_no, f"not JSON ({err.msg})"
                continue
            except (ValueError, RecursionError) as err:  # too deeply nested, a number with too many digits
                yield line_no, f"not usable JSON ({type(err).__name__})"
                continue
            if not isinstance(row, dict):
                yield line_no, f"not a JSON object but {type(row).__name__}"
                continue
            yield line_no, {k.lower(): "" if v is None else str(v) for k, v in row.items()}


class Manifest(Corpus):
    """The recordings a CSV (``.csv``) or JSONL (``.jsonl``/``.json``) manifest lists.

    Parameters
    ----------
    root : str or path-like
        The manifest file.

    Raises
    ------
    FileNotFoundError
        If the manifest does not exist, or (when listing) no row is usable.
    ValueError
        If a CSV header lacks ``path`` or ``label``, the CSV is not readable as CSV (e.g. a field
        beyond the csv module's size limit), or the extension is neither CSV nor JSONL.
    """

    name = "manifest"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_file():
            raise FileNotFoundError(f"manifest {str(self.root)!r} is not a file; expected a .csv or .jsonl manifest")
        if self.root.suffix.lower() not in (".csv", ".jsonl", ".json"):
            raise ValueError(f"{self.root}: a manifest is a .csv or .jsonl file")

    def _rows(self) -> Iterator[tuple[int, dict | str]]:
        return _csv_rows(self.root) if self.root.suffix.lower() == ".csv" else _jsonl_rows(self.root)

    def _scan(self) -> list[Utterance]:
        found: dict[str, Utterance] = {}
        genders: dict[str, tuple[str, int]] = {}  # speaker → (gender, line that said so)
        for line, row in self._rows():
            where = f"{self.root}:{line}"
            if isinstance(row, str):
                self.skip(where, row)
                continue
            path, label = row.get("path", "").strip(), row.get("label", "").strip()
            speaker, gender = row.get("speaker", "").strip(), row.get("gender", "").strip().lower()
            if not path or not label:
                self.skip(where, "empty path or label")
                continue
            emotion = from_synonym(label)
            if emotion is None:
                self.skip(where, f"label {label!r} is not an emovox emotion or synonym")
                continue
            if gender not in _GENDERS:
                self.skip(where, f"gender {gender!r} is not male, female or empty")
                continue
            gender = _GENDERS[gender]
            if speaker and gender != "unknown":
                said, said_on = genders.setdefault(speaker, (gender, line))
                if said != gender:
                    self.skip(where, f"speaker {speaker} is {said} on line {said_on}")
                    continue
            file = self.root.parent / path
            if not file.is_file():
                self.skip(where, f"no such file: {file}")
                continue
            name = Path(path).with_suffix("").as_posix()
            utt = Utterance(path=str(file), emotion=emotion, speaker=speaker or name, gender=gender, corpus="manifest",
                            name=name, speaker_known=bool(speaker))
            if utt.key in found:  # named by its line, not by the path as _keep would
                self.skip(where, f"a second copy of {found[utt.key].path}")
                continue
            found[utt.key] = utt
        if not found:
            raise self._nothing_found("usable")
        # a speaker's gender given on one row holds for its rows that left it empty
        return sorted((_with_gender(u, genders) for u in found.values()), key=lambda u: u.key)


def _with_gender(u: Utterance, genders: dict[str, tuple[str, int]]) -> Utterance:
    if u.gender == "unknown" and u.speaker_known and u.speaker in genders:
        return replace(u, gender=genders[u.speaker][0])
    return u
