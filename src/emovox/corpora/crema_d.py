"""CREMA-D (Cao et al. 2014, Open Database License): 91 actors, 12 sentences, 6 emotions.

Files are ``AudioWAV/1001_DFA_ANG_XX.wav``: actor 1001-1091, sentence code, emotion
(``ANG DIS FEA HAP NEU SAD``) and level (``LO MD HI``, ``XX`` unspecified), found recursively
below the folder given or inside a zip. Actors' sex comes from ``VideoDemographics.csv``
(``ActorID,Age,Sex,Race,Ethnicity``) when it is anywhere below the root; otherwise "unknown".
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path, PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio, location

#: CREMA-D emotion codes → emovox emotions (CREMA-D has no calm or surprise).
LABELS: dict[str, str] = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral",
                          "SAD": "sad"}
LEVELS: dict[str, str] = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES: tuple[str, ...] = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
DEMOGRAPHICS = "VideoDemographics.csv"
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def parse_name(path: str) -> dict[str, str]:
    """Fields of a CREMA-D file name: ``speaker``, ``sentence``, ``code`` (``"ANG"``, ...), ``level``.

    Raises
    ------
    ValueError
        If the stem is not ``<1001-1091>_<sentence>_<emotion>_<level>`` with known codes.
    """
    stem = PurePosixPath(str(path).replace("\\", "/")).name.rsplit(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise ValueError("not a CREMA-D file name (expected <actor>_<sentence>_<emotion>_<level>, e.g. 1001_DFA_ANG_XX)")
    speaker, sentence, code, level = m.groups()
    if not 1001 <= int(speaker) <= 1091:
        raise ValueError(f"CREMA-D actor {speaker} is not in 1001-1091")
    if sentence not in SENTENCES:
        raise ValueError(f"unknown CREMA-D sentence code {sentence}")
    if code not in LABELS:
        raise ValueError(f"unknown CREMA-D emotion code {code}")
    if level not in LEVELS:
        raise ValueError(f"unknown CREMA-D level {level}")
    return {"speaker": speaker, "sentence": sentence, "code": code, "level": LEVELS[level]}


def read_demographics(text: str) -> dict[str, str]:
    """``{actor id: "male" | "female" | "unknown"}`` from the text of ``VideoDemographics.csv``."""
    genders = {}
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            actor, sex = (row.get("ActorID") or "").strip(), (row.get("Sex") or "").strip().lower()
            if actor:
                genders[actor] = sex if sex in ("male", "female") else "unknown"
    except csv.Error as err:
        raise ValueError(f"{DEMOGRAPHICS} is not a readable CSV ({err})") from None
    return genders


def _demographics(root: Path) -> dict[str, str]:
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            names = sorted(n for n in zf.namelist() if PurePosixPath(n).name == DEMOGRAPHICS)
            return read_demographics(zf.read(names[0]).decode("utf-8-sig")) if names else {}
    found = sorted(root.rglob(DEMOGRAPHICS))
    return read_demographics(found[0].read_text(encoding="utf-8-sig")) if found else {}


class CremaD(Corpus):
    """The CREMA-D audio files below ``root`` (a folder or a zip file).

    Names that do not parse are recorded in :attr:`skipped`, as is the second copy of a file (the
    MP3 beside the WAV); an actor absent from
    ``VideoDemographics.csv`` (or every actor, without it) has gender "unknown".
    """

    name = "crema-d"
    layout = "AudioWAV/ with <actor>_<sentence>_<emotion>_<level>.wav files, or the zip holding them"

    def _scan(self) -> list[Utterance]:
        genders = _demographics(self.root)
        found: dict[str, Utterance] = {}
        # the release has AudioWAV/ and AudioMP3/: list lossless copies first, so they are the ones kept
        listed = sorted(list_audio(self.root), key=lambda e: (not e[0].lower().endswith((".wav", ".flac")), e))
        for path, archive in listed:
            try:
                info = parse_name(path)
            except ValueError as err:
                self.skip(location(path, archive), str(err))
                continue
            spk = info["speaker"]
            self._keep(found, Utterance(
                path=path, emotion=LABELS[info["code"]], speaker=spk, gender=genders.get(spk, "unknown"),
                corpus="crema-d", archive=archive, extra=(("sentence", info["sentence"]), ("level", info["level"]))))
        if not found:
            raise self._nothing_found("CREMA-D")
        return sorted(found.values(), key=lambda u: u.key)
