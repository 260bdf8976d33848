"""Your own recordings as a folder-per-label tree: ``angry/x.wav``, ``Happy/day1/y.flac``.

The label of a file is the nearest folder above it (below the root) whose name is an emotion
or a common synonym (:data:`emovox.labels.SYNONYMS`, any case): ``anger``/``angry``,
``happiness``/``happy``/``joy``, ``sadness``/``sad``, ``fear``/``fearful``/``afraid``,
``surprise``/``surprised``, ``disgust``/``disgusted``, ``neutral``, ``calm``. The tree gives
no speakers, so each file is its own speaker (``speaker_known=False``) and splits say they
could not be speaker-disjoint; for speakers, write a manifest (:mod:`emovox.corpora.manifest`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio, location
from emovox.labels import from_synonym


def label_of(relative: str) -> str | None:
    """The emotion named by the nearest folder above ``relative`` (a path below the root), or None."""
    for folder in reversed(PurePosixPath(relative.replace("\\", "/")).parts[:-1]):
        emotion = from_synonym(folder)
        if emotion:
            return emotion
    return None


class FolderTree(Corpus):
    """Audio files below ``root`` (a folder or a zip), labelled by their folders.

    Files with no emotion folder above them are recorded in :attr:`skipped`.
    """

    name = "folder"
    layout = "<emotion>/<file> below it"

    def _scan(self) -> list[Utterance]:
        found: dict[str, Utterance] = {}
        for path, archive in list_audio(self.root):
            relative = path if archive else Path(path).relative_to(self.root).as_posix()
            emotion = label_of(relative)
            if emotion is None:
                self.skip(location(path, archive), "no folder above it names an emotion")
                continue
            name = relative.rsplit(".", 1)[0]
            self._keep(found, Utterance(path=path, emotion=emotion, speaker=name, gender="unknown", corpus="folder",
                                        archive=archive, name=name, speaker_known=False))
        if not found:
            raise self._nothing_found("labelled")
        return sorted(found.values(), key=lambda u: u.key)
