"""TESS, the Toronto emotional speech set (Pichora-Fuller & Dupuis 2020, CC BY-NC-ND 4.0).

Two female speakers, OAF (older) and YAF (younger), say "Say the word <word>" in seven
emotions: ``OAF_angry/OAF_back_angry.wav``, ``YAF_pleasant_surprised/YAF_bean_ps.wav``. Folder
case varies between copies (``OAF_Fear``, ``OAF_Pleasant_surprise``); only the file name is
parsed. Some files of the real release are not RIFF WAV behind their ``.wav`` name and rates
vary: :func:`emovox.audio.load` decodes by content, so nothing is filtered here.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio, location

SPEAKERS: tuple[str, ...] = ("OAF", "YAF")
#: TESS labels (lower case) → emovox emotions; TESS has no calm.
LABELS: dict[str, str] = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                          "neutral": "neutral", "sad": "sad", "ps": "surprised",
                          "pleasant_surprise": "surprised", "pleasant_surprised": "surprised"}
_NAME = re.compile(r"^(OAF|YAF)_([^_]+)_(.+)$", re.IGNORECASE)


def parse_name(path: str) -> tuple[str, str, str]:
    """``(speaker, word, TESS label)`` of a file such as ``OAF_back_angry.wav``.

    The label is lower-cased and may have no emovox counterpart (see :data:`LABELS`).

    Raises
    ------
    ValueError
        If the stem is not ``<OAF|YAF>_<word>_<label>``.
    """
    stem = PurePosixPath(str(path).replace("\\", "/")).name.rsplit(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise ValueError("not a TESS file name (expected OAF_<word>_<label> or YAF_<word>_<label>)")
    speaker, word, label = m.groups()
    return speaker.upper(), word.lower(), label.lower()


class Tess(Corpus):
    """The TESS audio files below ``root`` (a folder, searched recursively, or a zip file).

    Names that do not parse and labels outside :data:`LABELS` are recorded in :attr:`skipped`;
    a second copy of one file (some copies hold the set twice) is kept once.
    """

    name = "tess"
    layout = "OAF_<emotion>/ and YAF_<emotion>/ folders of <speaker>_<word>_<emotion>.wav files, or their zip"

    def _scan(self) -> list[Utterance]:
        found: dict[str, Utterance] = {}
        for path, archive in list_audio(self.root):
            where = location(path, archive)
            try:
                speaker, word, label = parse_name(path)
            except ValueError as err:
                self.skip(where, str(err))
                continue
            if label not in LABELS:
                self.skip(where, f"TESS label {label!r} has no emovox emotion")
                continue
            self._keep(found, Utterance(path=path, emotion=LABELS[label], speaker=speaker, gender="female",
                                        corpus="tess", archive=archive, extra=(("word", word),),
                                        name=f"{speaker}_{word}_{LABELS[label]}"))
        if not found:
            raise self._nothing_found("TESS")
        return sorted(found.values(), key=lambda u: u.key)
