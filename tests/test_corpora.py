"""RAVDESS listing against the real files in ../shared/data/ravdess (no audio decoding)."""

from __future__ import annotations

import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from emovox.corpora import DEFAULT_RAVDESS_ROOT, Corpus, Ravdess, Utterance, open_corpus
from emovox.corpora.ravdess import parse_name
from emovox.labels import EMOTIONS

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason=f"RAVDESS not found at {ROOT}")
SPEECH = "Audio_Speech_Actors_01-24"


@pytest.fixture(scope="module")
def speech() -> list[Utterance]:
    return Ravdess(ROOT).utterances()


@pytest.fixture(scope="module")
def song() -> list[Utterance]:
    return Ravdess(ROOT, channels=("song",)).utterances()


def test_speech_counts(speech):
    assert len(speech) == 1440
    assert {u.corpus for u in speech} == {"ravdess-speech"}
    per_actor = Counter(u.speaker for u in speech)
    assert sorted(per_actor) == [f"{a:02d}" for a in range(1, 25)]
    assert set(per_actor.values()) == {60}
    emotions = Counter(u.emotion for u in speech)
    assert emotions == {e: 96 if e == "neutral" else 192 for e in EMOTIONS}
    assert all(u.gender == ("male" if int(u.speaker) % 2 else "female") for u in speech)
    assert len({u.key for u in speech}) == 1440
    assert all(u.archive is None and Path(u.path).is_file() for u in speech)
    assert [u.path for u in speech] == sorted(u.path for u in speech)


def test_song_counts(song):
    assert len(song) == 1012
    assert {u.corpus for u in song} == {"ravdess-song"}
    per_actor = Counter(u.speaker for u in song)
    assert "18" not in per_actor and len(per_actor) == 23 and set(per_actor.values()) == {44}
    emotions = Counter(u.emotion for u in song)
    assert set(emotions) == set(EMOTIONS[:6]) and emotions["neutral"] == 92


def test_all_and_open_corpus(speech, song):
    both = Ravdess(ROOT, channels=("song", "speech"))
    assert both.name == "ravdess-all" and len(both.utterances()) == 2452
    assert isinstance(both, Corpus)
    assert open_corpus("ravdess", ROOT).utterances() == speech
    assert open_corpus("ravdess-song", ROOT).utterances() == song
    assert open_corpus("ravdess-all", ROOT).name == "ravdess-all"
    with pytest.raises(ValueError, match="unknown corpus"):
        open_corpus("iemocap", ROOT)
    assert DEFAULT_RAVDESS_ROOT is None or Path(DEFAULT_RAVDESS_ROOT).exists()


def test_utterance_fields(speech):
    u = next(u for u in speech if Path(u.path).name == "03-01-05-02-02-01-12.flac")
    assert (u.emotion, u.speaker, u.gender, u.corpus) == ("angry", "12", "female", "ravdess-speech")
    assert u.field("intensity") == "strong" and u.field("statement") == "dogs" and u.field("repetition") == "1"
    assert u.field("nope") is None and u.field("nope", "x") == "x"
    assert u.key == "ravdess-speech/03-01-05-02-02-01-12"
    assert u.source() == u.path


@pytest.mark.parametrize("name, expected", [
    ("03-01-01-01-01-01-01.wav", dict(channel="speech", emotion="neutral", intensity="normal",
                                      statement="kids", repetition="1", actor="01", gender="male")),
    ("Actor_24/03-02-06-02-02-02-24.flac", dict(channel="song", emotion="fearful", intensity="strong",
                                                statement="dogs", repetition="2", actor="24", gender="female")),
    ("03-01-08-01-02-02-01", dict(emotion="surprised", modality="audio-only")),
    ("03-01-07-02-01-01-17.wav", dict(emotion="disgust", actor="17", gender="male")),
])
def test_parse_name(name, expected):
    info = parse_name(name)
    assert {k: info[k] for k in expected} == expected


@pytest.mark.parametrize("name", [
    "03-01-01-01-01-01.wav", "03-01-09-01-01-01-01.wav", "03-03-01-01-01-01-01.wav",
    "03-01-01-01-01-01-25.wav", "03-01-01-02-01-01-01.wav", "03-02-07-01-01-01-01.wav", "hello.wav",
])
def test_parse_name_rejects(name):
    with pytest.raises(ValueError, match=name.split(".")[0]):
        parse_name(name)


def _real_files(n: int) -> list[Path]:
    return sorted((ROOT / SPEECH).glob("Actor_0[12]/*.flac"))[:n]


def test_zip(tmp_path):
    files = _real_files(6)
    archive = tmp_path / f"{SPEECH}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files:
            zf.write(f, f"{f.parent.name}/{f.name}")
        zf.writestr("Actor_01/.DS_Store", b"junk")
        zf.writestr("README.txt", b"not audio")
        zf.writestr("__MACOSX/Actor_01/._03-01-01-01-01-01-01.flac", b"resource fork")
    for root in (archive, tmp_path):  # the zip itself, or the folder holding it
        utts = Ravdess(root).utterances()
        assert [Path(u.path).name for u in utts] == [f.name for f in files]
        assert all(u.archive == str(archive) for u in utts)
        for u, f in zip(utts, files):
            assert u.source() == f.read_bytes()
    with pytest.raises(FileNotFoundError, match="song"):
        Ravdess(archive, channels=("song",)).utterances()


def test_wav_folder(tmp_path):
    files = _real_files(3)
    for f in files:
        dest = tmp_path / f.parent.name / f.with_suffix(".wav").name
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(f, dest)
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "README").write_text("not audio")
    utts = Ravdess(tmp_path).utterances()  # a folder directly holding Actor_XX folders
    assert [Path(u.path).name for u in utts] == [f.with_suffix(".wav").name for f in files]
    assert all(u.source() == u.path and u.emotion == "neutral" for u in utts)
    # the same under the official folder name
    nested = tmp_path / "nested"
    shutil.copytree(tmp_path / files[0].parent.name, nested / SPEECH / files[0].parent.name)
    assert len(Ravdess(nested).utterances()) == 3


def test_bad_name(tmp_path):
    (tmp_path / "Actor_01").mkdir()
    (tmp_path / "Actor_01" / "03-01-01-01-01-01-01.wav").write_bytes(b"")
    bad = tmp_path / "Actor_01" / "03-01-01-01-01-01.wav"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="03-01-01-01-01-01.wav"):
        Ravdess(tmp_path).utterances()
    bad.unlink()
    (tmp_path / "Actor_01" / "03-01-01-01-01-02-03.wav").write_bytes(b"")  # actor 03 in Actor_01
    with pytest.raises(ValueError, match="Actor_01"):
        Ravdess(tmp_path).utterances()


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Ravdess(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="song"):
        Ravdess(tmp_path, channels=("song",)).utterances()
    with pytest.raises(ValueError, match="channels"):
        Ravdess(ROOT, channels=("video",))
