"""Corpus-independent description of one labelled recording, and the corpus interface."""

from __future__ import annotations

import abc
import os
import zipfile
from collections import Counter
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
    speaker_scope : str or None
        Whose speaker ids these are: utterances with the same scope and speaker are one person
        (RAVDESS speech and song share ``"ravdess"``); ``None``: the corpus. Splits group by
        :attr:`speaker_id`, so two corpora that both have a speaker ``"01"`` stay two people.
    speaker_known : bool
        ``False`` when the corpus gave no speaker id: ``speaker`` is then the utterance's own
        name (each file its own speaker) and splits cannot promise speaker disjointness.
    """

    path: str
    emotion: str
    speaker: str
    gender: str
    corpus: str
    archive: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    speaker_scope: str | None = None
    speaker_known: bool = True

    def __post_init__(self) -> None:
        if self.emotion not in EMOTIONS:
            raise ValueError(f"{self.path}: unknown emotion {self.emotion!r}; expected one of {', '.join(EMOTIONS)}")
        if self.gender not in GENDERS:
            raise ValueError(f"{self.path}: gender must be one of {', '.join(GENDERS)}, got {self.gender!r}")

    @property
    def key(self) -> str:
        """Stable unique id, ``"<corpus>/<file stem>"``."""
        return f"{self.corpus}/{self.name or PurePosixPath(self.path.replace(chr(92), '/')).stem}"

    @property
    def speaker_id(self) -> str:
        """The speaker qualified by its scope, ``"<scope>/<speaker>"`` (e.g. ``"ravdess/01"``)."""
        return f"{self.speaker_scope or self.corpus}/{self.speaker}"

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
    """A labelled speech corpus: a named, deterministic list of :class:`Utterance`.

    A reader implements :meth:`_scan` (or overrides :meth:`utterances`). What it cannot load
    (a name that does not parse, a label without an emovox emotion, a bad manifest row, a
    missing file, a second copy of one utterance) it records with :meth:`skip` and goes on.

    Attributes
    ----------
    name : str
        The registry name (:func:`emovox.corpora.open_corpus`).
    skipped : list of (str, str)
        ``(path or "manifest:line", reason)`` of everything not loaded, filled by
        :meth:`utterances`; :meth:`skip_counts` counts the reasons.
    """

    name: str
    skipped: list[tuple[str, str]] = []  # replaced per instance by utterances(); never appended to here
    _utts: tuple[Utterance, ...] | None = None
    #: what the folder (or zip) given to a reader should hold, for the error when it does not exist
    layout: str = "the corpus's files"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"{self.name} root {str(self.root)!r} does not exist; expected {self.layout}")

    def utterances(self) -> list[Utterance]:
        """All utterances, sorted deterministically (listed once, then cached)."""
        if self._utts is None:
            self.skipped = []
            self._utts = tuple(self._scan())
        return list(self._utts)

    def _scan(self) -> list[Utterance]:
        """List the corpus (called once by :meth:`utterances`)."""
        raise NotImplementedError

    def skip(self, where: str, reason: str) -> None:
        """Record that ``where`` (a path, or ``"file:line"``) was not loaded, and why.

        Keep ``reason`` free of the path, so that :meth:`skip_counts` groups equal reasons.
        """
        if "skipped" not in self.__dict__:  # never append to the class-level default
            self.skipped = []
        self.skipped.append((where, reason))

    def _keep(self, found: dict[str, Utterance], utt: Utterance) -> None:
        """Add ``utt`` to ``found`` by key; a second copy of one utterance is skipped."""
        first = found.setdefault(utt.key, utt)
        if first is not utt:
            self.skip(location(utt.path, utt.archive), f"a second copy of {utt.key}")

    def _nothing_found(self, what: str) -> FileNotFoundError:
        """The error for a listing that kept nothing, naming the first skipped file if any."""
        hint = f" ({len(self.skipped)} skipped, e.g. {self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped else ""
        return FileNotFoundError(f"no {what} audio found under {str(getattr(self, 'root', '?'))!r}{hint}")

    def skip_counts(self) -> dict[str, int]:
        """How many files or rows were skipped for each reason, most frequent first."""
        return dict(Counter(reason for _, reason in self.skipped).most_common())


def location(path: str, archive: str | None) -> str:
    """How to name a file in messages: ``path``, or ``"archive.zip:member"``."""
    return f"{archive}:{path}" if archive else path


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
