"""EmoDB, the Berlin database of emotional speech (Burkhardt et al. 2005): 10 German actors.

Files are ``wav/03a01Fa.wav`` in the official archive (or the same names in any folder, or the
zip): speaker (two digits), text (three characters), emotion letter, version letter. Letters:
``W`` Wut (anger), ``L`` Langeweile (boredom: no emovox emotion, skipped and counted),
``E`` Ekel (disgust), ``A`` Angst (fear), ``F`` Freude (happiness), ``T`` Trauer (sadness),
``N`` neutral.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio, location

#: EmoDB emotion letters → emovox emotions; ``None``: no counterpart (boredom), skipped.
LABELS: dict[str, str | None] = {"W": "angry", "L": None, "E": "disgust", "A": "fearful", "F": "happy",
                                 "T": "sad", "N": "neutral"}
GENDERS: dict[str, str] = {**{s: "male" for s in ("03", "10", "11", "12", "15")},
                           **{s: "female" for s in ("08", "09", "13", "14", "16")}}
_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])$")


def parse_name(path: str) -> tuple[str, str, str, str]:
    """``(speaker, text, emotion letter, version)`` of a file such as ``03a01Fa.wav``.

    Raises
    ------
    ValueError
        If the stem is not ``<speaker><text><letter><version>`` or the speaker is not an EmoDB actor.
    """
    stem = PurePosixPath(str(path).replace("\\", "/")).name.rsplit(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise ValueError("not an EmoDB file name (expected <speaker><text><emotion><version>, e.g. 03a01Fa)")
    if m.group(1) not in GENDERS:
        raise ValueError(f"EmoDB has no speaker {m.group(1)}")
    return m.groups()  # type: ignore[return-value]


class EmoDB(Corpus):
    """The EmoDB audio files below ``root`` (a folder or a zip file).

    Boredom (``L``) and names that do not parse are recorded in :attr:`skipped`.
    """

    name = "emodb"
    layout = "wav/03a01Fa.wav-style files (in any folder) or the zip holding them"

    def _scan(self) -> list[Utterance]:
        found: dict[str, Utterance] = {}
        for path, archive in list_audio(self.root):
            where = location(path, archive)
            try:
                speaker, text, letter, version = parse_name(path)
            except ValueError as err:
                self.skip(where, str(err))
                continue
            if LABELS[letter] is None:
                self.skip(where, f"EmoDB label {letter} (boredom) has no emovox emotion")
                continue
            self._keep(found, Utterance(path=path, emotion=LABELS[letter], speaker=speaker, gender=GENDERS[speaker],
                                        corpus="emodb", archive=archive,
                                        extra=(("text", text), ("version", version))))
        if not found:
            raise self._nothing_found("EmoDB")
        return sorted(found.values(), key=lambda u: u.key)
