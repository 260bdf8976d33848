"""RAVDESS, audio-only speech and song (Livingstone & Russo 2018, CC BY-NC-SA 4.0).

File names are ``MM-VV-EE-II-SS-RR-AA.ext`` (modality, vocal channel, emotion, intensity,
statement, repetition, actor); odd actors are male, even actors female. Files may be WAV
(the official release) or FLAC, in folders or in the official zip files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from emovox.corpora.base import Corpus, Utterance, list_audio
from emovox.labels import EMOTIONS

#: Folder (and zip stem) of each vocal channel in the official release.
CHANNEL_DIRS: dict[str, str] = {"speech": "Audio_Speech_Actors_01-24", "song": "Audio_Song_Actors_01-24"}
#: File extensions listed as audio (case-insensitive); any other file is ignored.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")

_MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
_CHANNELS = {"01": "speech", "02": "song"}
_EMOTIONS = {f"{i:02d}": e for i, e in enumerate(EMOTIONS, start=1)}
_INTENSITIES = {"01": "normal", "02": "strong"}
_STATEMENTS = {"01": "kids", "02": "dogs"}
_REPETITIONS = {"01": "1", "02": "2"}
_SONG_EMOTIONS = EMOTIONS[:6]
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


def parse_name(filename: str | os.PathLike) -> dict[str, str]:
    """Parse a RAVDESS file name.

    Parameters
    ----------
    filename : str or path-like
        A file name or path such as ``"Actor_01/03-01-05-02-01-01-01.wav"``; only the
        stem of the last component is parsed.

    Returns
    -------
    dict
        Keys ``modality`` (``"audio-only"``, ...), ``channel`` (``"speech"``/``"song"``),
        ``emotion``, ``intensity`` (``"normal"``/``"strong"``), ``statement``
        (``"kids"``/``"dogs"``), ``repetition`` (``"1"``/``"2"``), ``actor``
        (``"01"``..``"24"``) and ``gender`` (``"male"`` for odd actors, else ``"female"``).

    Raises
    ------
    ValueError
        If the name does not have seven valid two-digit fields, or names a combination
        absent from RAVDESS (strong neutral; disgust or surprised in song).
    """
    stem = PurePosixPath(str(filename).replace("\\", "/")).name.split(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise ValueError(f"{filename}: not a RAVDESS file name (expected MM-VV-EE-II-SS-RR-AA, seven two-digit fields)")
    mm, vv, ee, ii, ss, rr, aa = m.groups()
    fields = [("modality", mm, _MODALITIES), ("vocal channel", vv, _CHANNELS), ("emotion", ee, _EMOTIONS),
              ("intensity", ii, _INTENSITIES), ("statement", ss, _STATEMENTS), ("repetition", rr, _REPETITIONS)]
    for what, code, table in fields:
        if code not in table:
            raise ValueError(f"{filename}: invalid {what} code {code!r}; expected one of {', '.join(table)}")
    if not 1 <= int(aa) <= 24:
        raise ValueError(f"{filename}: invalid actor {aa!r}; expected 01..24")
    out = {"modality": _MODALITIES[mm], "channel": _CHANNELS[vv], "emotion": _EMOTIONS[ee],
           "intensity": _INTENSITIES[ii], "statement": _STATEMENTS[ss], "repetition": _REPETITIONS[rr],
           "actor": aa, "gender": "male" if int(aa) % 2 else "female"}
    if out["emotion"] == "neutral" and out["intensity"] == "strong":
        raise ValueError(f"{filename}: RAVDESS has no strong-intensity neutral")
    if out["channel"] == "song" and out["emotion"] not in _SONG_EMOTIONS:
        raise ValueError(f"{filename}: RAVDESS song has no {out['emotion']}")
    return out


def _list(source: Path) -> list[tuple[str, str | None]]:
    return list_audio(source, AUDIO_EXTENSIONS)


class Ravdess(Corpus):
    """The RAVDESS audio files, speech and/or song.

    Parameters
    ----------
    root : str or path-like
        One of: a folder holding ``Audio_Speech_Actors_01-24/`` and/or
        ``Audio_Song_Actors_01-24/`` (each with ``Actor_XX/`` folders); a folder holding the
        official ``Audio_Speech_Actors_01-24.zip`` / ``Audio_Song_Actors_01-24.zip``; a
        folder that directly contains ``Actor_XX/`` folders; or the path of one zip file.
        Folders take precedence over zips with the same stem.
    channels : sequence of {"speech", "song"}
        The vocal channels to list.

    Attributes
    ----------
    name : str
        ``"ravdess"`` (speech), ``"ravdess-song"`` or ``"ravdess-all"``, as in
        :func:`emovox.corpora.open_corpus`. Each utterance's ``corpus`` is
        ``"ravdess-speech"`` or ``"ravdess-song"``.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist, or a requested channel has no files under it.
    ValueError
        For an unknown channel, or (when listing) an audio file whose name does not parse,
        that sits in the wrong ``Actor_XX`` / channel folder, or that duplicates another:
        RAVDESS names are exact, so an odd one means a damaged copy. Only files of a channel
        not asked for (in a zip holding both) go to :attr:`skipped`. Speakers are scoped
        ``"ravdess"``: an actor is one person in speech and song.
    """

    def __init__(self, root: str | os.PathLike, channels: str | tuple[str, ...] = ("speech",)):
        if isinstance(channels, str):
            channels = (channels,)
        unknown = set(channels) - set(CHANNEL_DIRS)
        if unknown or not channels:
            raise ValueError(f"channels must be a non-empty subset of {sorted(CHANNEL_DIRS)}, got {channels!r}")
        self.channels = tuple(c for c in CHANNEL_DIRS if c in channels)
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(
                f"RAVDESS root {str(self.root)!r} does not exist; expected a folder with "
                f"{' / '.join(CHANNEL_DIRS.values())} (folders or .zip files) or Actor_XX folders, or one such .zip")
        self.name = {("speech",): "ravdess", ("song",): "ravdess-song"}.get(self.channels, "ravdess-all")

    def _sources(self) -> list[tuple[Path, str | None]]:
        """``(folder or zip, channel it must hold or None)`` to list."""
        if self.root.is_file():
            return [(self.root, None)]
        sources = []
        for ch in self.channels:
            folder = self.root / CHANNEL_DIRS[ch]
            archive = folder.with_name(folder.name + ".zip")
            if folder.is_dir():
                sources.append((folder, ch))
            elif archive.is_file():
                sources.append((archive, ch))
        return sources or [(self.root, None)]

    def utterances(self) -> list[Utterance]:
        """All utterances of the requested channels, sorted by path (listed once, then cached)."""
        return super().utterances()

    def _scan(self) -> list[Utterance]:
        utts: dict[str, Utterance] = {}
        for src, expected in self._sources():
            entries = _list(src)
            for path, archive in entries:
                where = f"{archive}:{path}" if archive else path
                info = parse_name(where)
                if expected and info["channel"] != expected:
                    raise ValueError(f"{where}: a {info['channel']} file in the {expected} folder")
                parent = _ACTOR_DIR.match(PurePosixPath(path.replace("\\", "/")).parent.name)
                if parent and parent.group(1) != info["actor"]:
                    raise ValueError(f"{where}: actor {info['actor']} file in folder Actor_{parent.group(1)}")
                if info["channel"] not in self.channels:
                    self.skip(where, f"a {info['channel']} file; channels read: {', '.join(self.channels)}")
                    continue
                utt = Utterance(
                    path=path, emotion=info["emotion"], speaker=info["actor"], gender=info["gender"],
                    corpus=f"ravdess-{info['channel']}", archive=archive, speaker_scope="ravdess",
                    extra=(("intensity", info["intensity"]), ("statement", info["statement"]),
                           ("repetition", info["repetition"])))
                if utt.key in utts:
                    other = utts[utt.key]
                    raise ValueError(f"{where}: duplicates {other.archive + ':' if other.archive else ''}{other.path}")
                utts[utt.key] = utt
        for ch in self.channels:
            if not any(u.corpus == f"ravdess-{ch}" for u in utts.values()):
                raise FileNotFoundError(
                    f"no RAVDESS {ch} audio (.wav/.flac) found under {str(self.root)!r}; expected "
                    f"{CHANNEL_DIRS[ch]}/Actor_XX/ or {CHANNEL_DIRS[ch]}.zip there, Actor_XX/ folders, or a zip")
        return sorted(utts.values(), key=lambda u: (u.path, u.archive or ""))
