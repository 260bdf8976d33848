"""SAVEE (Surrey Audio-Visual Expressed Emotion; Haq & Jackson 2009): 4 male British speakers.

Free of charge for research use from the University of Surrey: a model trained on it carries
that restriction. Three layouts are found, recursively below the folder given or inside a zip:

* the official ``AudioData/DC/a01.wav`` (speaker folder, then ``<code><nn>``);
* the common flat copy ``ALL/DC_a01.wav`` or ``DC_a01.wav`` in any one folder.

Codes: ``a`` anger, ``d`` disgust, ``f`` fear, ``h`` happiness, ``n`` neutral, ``sa`` sadness,
``su`` surprise. Any audio container is accepted (the shared copy is FLAC).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio, location

SPEAKERS: tuple[str, ...] = ("DC", "JE", "JK", "KL")
#: SAVEE's emotion codes → emovox emotions (SAVEE has no calm).
LABELS: dict[str, str] = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
                          "sa": "sad", "su": "surprised"}
_FLAT = re.compile(r"^(DC|JE|JK|KL)_(a|d|f|h|n|sa|su)(\d\d)$")
_NESTED = re.compile(r"^(a|d|f|h|n|sa|su)(\d\d)$")


def parse_name(path: str) -> tuple[str, str, str]:
    """``(speaker, emotion, number)`` of a SAVEE file path.

    ``AudioData/DC/a01.wav`` (speaker from the parent folder) or ``DC_a01.wav``.

    Raises
    ------
    ValueError
        If neither naming matches.
    """
    p = PurePosixPath(str(path).replace("\\", "/"))
    stem = p.name.split(".", 1)[0]
    flat = _FLAT.match(stem)
    if flat:
        speaker, code, number = flat.groups()
        return speaker, LABELS[code], number
    nested = _NESTED.match(stem)
    if nested and p.parent.name in SPEAKERS:
        code, number = nested.groups()
        return p.parent.name, LABELS[code], number
    raise ValueError(f"{path}: not a SAVEE file name (expected <SPEAKER>/<code><nn> or <SPEAKER>_<code><nn>, "
                     f"speakers {', '.join(SPEAKERS)}, codes {', '.join(LABELS)})")


class Savee(Corpus):
    """The SAVEE audio files below ``root`` (a folder or a zip file).

    Files whose names are not SAVEE names are recorded in :attr:`skipped`; a second copy of one
    utterance (e.g. both ``AudioData/DC/a01.wav`` and ``ALL/DC_a01.wav``) is kept once, the
    other recorded in :attr:`skipped` too.
    """

    name = "savee"
    layout = "AudioData/<speaker>/ folders, <speaker>_<code><nn> files, or the zip holding them"

    def _scan(self) -> list[Utterance]:
        found: dict[str, Utterance] = {}
        for path, archive in list_audio(self.root):
            try:
                speaker, emotion, number = parse_name(path)
            except ValueError:
                self.skip(location(path, archive), "not a SAVEE file name")
                continue
            code = next(c for c, e in LABELS.items() if e == emotion)
            self._keep(found, Utterance(path=path, emotion=emotion, speaker=speaker, gender="male", corpus="savee",
                                        archive=archive, extra=(("number", number),), name=f"{speaker}_{code}{number}"))
        if not found:
            raise self._nothing_found("SAVEE")
        return sorted(found.values(), key=lambda u: u.key)
