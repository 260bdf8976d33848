"""Corpus-independent description of one labelled recording, and the corpus interface."""

from __future__ import annotations

import abc
import zipfile
from dataclasses import dataclass
from pathlib import Path

from emovox.labels import EMOTIONS

GENDERS: tuple[str, ...] = ("male", "female")


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
        ``"male"`` or ``"female"``.
    corpus : str
        The sub-corpus, e.g. ``"ravdess-speech"`` or ``"ravdess-song"``.
    archive : str or None
        Path of the zip file holding ``path``; ``None`` for a plain file.
    extra : tuple of (str, str)
        Further metadata, e.g. ``(("intensity", "strong"), ("statement", "dogs"))``.
    """

    path: str
    emotion: str
    speaker: str
    gender: str
    corpus: str
    archive: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.emotion not in EMOTIONS:
            raise ValueError(f"{self.path}: unknown emotion {self.emotion!r}; expected one of {', '.join(EMOTIONS)}")
        if self.gender not in GENDERS:
            raise ValueError(f"{self.path}: gender must be 'male' or 'female', got {self.gender!r}")

    @property
    def key(self) -> str:
        """Stable unique id, ``"<corpus>/<file stem>"``."""
        return f"{self.corpus}/{Path(self.path).stem}"

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
