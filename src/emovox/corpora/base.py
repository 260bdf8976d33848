"""Corpus-independent description of one labelled recording, and the corpus interface."""

from __future__ import annotations

import abc
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from emovox.audio import AUDIO_EXTENSIONS
from emovox.labels import EMOTIONS

#: ``"unknown"`` where a corpus or manifest does not say.
GENDERS: tuple[str, ...] = ("male", "female", "unknown")


@dataclass(frozen=True)
class Utterance:
    """One labelled recording of a corpus.

    Attributes
    ----------
    path : str
        A file path, or the member name inside ``archive``.
    emotion : str
        One of :data:`emovox.labels.EMOTIONS`.
    speaker : str
        Corpus-local speaker id (RAVDESS: the actor number ``"01"``..``"24"``, the same
        in speech and song, so that splits stay actor-disjoint across both).
    gender : str
        ``"male"``, ``"female"`` or ``"unknown"``.
    corpus : str
        The sub-corpus, e.g. ``"ravdess-speech"`` or ``"ravdess-song"``.
    archive : str or None
        Path of the zip file holding ``path``; ``None`` for a plain file.
    extra : tuple of (str, str)
        Further metadata, e.g. ``(("intensity", "strong"), ("statement", "dogs"))``.
    name : str or None
        The utterance's name within its corpus when the file stem is not unique
        (SAVEE's ``AudioData/DC/a01.wav`` is ``DC_a01``); ``None``: the file stem.
    """

    path: str
    emotion: str
    speaker: str
    gender: str
    corpus: str
    archive: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if self.emotion not in EMOTIONS:
            raise ValueError(f"{self.path}: unknown emotion {self.emotion!r}; expected one of {', '.join(EMOTIONS)}")
        if self.gender not in GENDERS:
            raise ValueError(f"{self.path}: gender must be one of {', '.join(GENDERS)}, got {self.gender!r}")

    @property
    def key(self) -> str:
        """Stable unique id, ``"<corpus>/<file stem>"``."""
        return f"{self.corpus}/{self.name or PurePosixPath(self.path.replace(chr(92), '/')).stem}"

    def field(self, name: str, default: str | None = None) -> str | None:
        """Value of ``name`` in :attr:`extra`, or ``default`` if absent."""
        for key, value in self.extra:
            if key == name:
                return value
        return default

    def source(self) -> str | bytes:
        """What :func:`emovox.audio.load` accepts: the file path, or the member's bytes read from the zip."""
        if self.archive is None:
            return self.path
        with zipfile.ZipFile(self.archive) as zf:
            return zf.read(self.path)


class Corpus(abc.ABC):
    """A labelled speech corpus: a named, deterministic list of :class:`Utterance`."""

    name: str

    @abc.abstractmethod
    def utterances(self) -> list[Utterance]:
        """All utterances, sorted deterministically by path."""


def is_audio_name(name: str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> bool:
    """True for a non-hidden file name with an audio extension."""
    base = PurePosixPath(name).name
    return not base.startswith(".") and base.lower().endswith(extensions)


def list_audio(root: str | os.PathLike, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[tuple[str, str | None]]:
    """``(path, archive)`` of every audio file below a folder (recursively) or inside a zip file.

    Hidden files and folders and ``__MACOSX`` are skipped. For a zip, ``path`` is the member name
    and ``archive`` the zip's path; for a folder ``archive`` is ``None``. Sorted.
    """
    root = Path(root)
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            names = zf.namelist()
        return sorted((n, str(root)) for n in names
                      if not n.endswith("/") and "__MACOSX" not in n.split("/") and is_audio_name(n, extensions)
                      and not any(part.startswith(".") for part in n.split("/")))
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        found += [(os.path.join(dirpath, f), None) for f in filenames if is_audio_name(f, extensions)]
    return sorted(found)
