"""Corpus readers on synthetic miniature trees named as the real corpora are, the manifest's
error reporting, SAVEE on the real files, and `emovox data check`."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emovox.cli import main
from emovox.corpora import CORPORA, open_corpus
from emovox.corpora.check import check_corpus, format_table
from emovox.labels import EMOTIONS, from_synonym

SAVEE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "savee"


def tone(path: Path, rate: int = 16000, freq: float = 440.0, fmt: str | None = None, seconds: float = 0.05) -> Path:
    """A short sine written with soundfile; ``fmt`` forces the container whatever the name says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    # int16 samples: libsndfile rounds floats differently for WAV and FLAC
    sf.write(path, (9000 * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate, format=fmt, subtype="PCM_16")
    return path


def zip_tree(root: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(root).as_posix())
    return archive


# ---------------------------------------------------------------- TESS


@pytest.fixture
def tess(tmp_path) -> Path:
    root = tmp_path / "TESS Toronto emotional speech set data"
    tone(root / "OAF_angry" / "OAF_back_angry.wav")
    tone(root / "OAF_Fear" / "OAF_back_fear.wav", rate=24414)
    tone(root / "OAF_Pleasant_surprise" / "OAF_back_ps.wav")
    tone(root / "OAF_disgust" / "OAF_back_disgust.wav")
    tone(root / "YAF_pleasant_surprised" / "YAF_bean_pleasant_surprised.wav", rate=22050)
    tone(root / "YAF_happy" / "YAF_bean_happy.wav", fmt="FLAC")  # not RIFF behind a .wav name, as in the release
    tone(root / "YAF_sad" / "YAF_bean_sad.wav")
    tone(root / "YAF_neutral" / "YAF_bean_neutral.wav")
    tone(root / "YAF_neutral" / "YAF_bean_calm.wav")           # TESS has no such label: skipped, counted
    tone(root / "YAF_neutral" / "notes.wav")                    # not a TESS name
    return root


def test_tess(tess, tmp_path):
    corpus = open_corpus("tess", tess)
    utts = corpus.utterances()
    assert [u.name for u in utts] == ["OAF_back_angry", "OAF_back_disgust", "OAF_back_fearful", "OAF_back_surprised",
                                      "YAF_bean_happy", "YAF_bean_neutral", "YAF_bean_sad", "YAF_bean_surprised"]
    assert Counter(u.speaker for u in utts) == {"OAF": 4, "YAF": 4}
    assert {u.gender for u in utts} == {"female"} and {u.corpus for u in utts} == {"tess"}
    assert utts[0].field("word") == "back"
    assert corpus.skip_counts() == {"TESS label 'calm' has no emovox emotion": 1,
                                    "not a TESS file name (expected OAF_<word>_<label> or YAF_<word>_<label>)": 1}
    # the zip holds the same utterances
    zipped = open_corpus("tess", zip_tree(tess, tmp_path / "tess.zip")).utterances()
    assert [(u.key, u.emotion) for u in zipped] == [(u.key, u.emotion) for u in utts]
    assert all(u.archive == str(tmp_path / "tess.zip") for u in zipped)
    # data check decodes by content: the FLAC-in-.wav reads, rates vary
    report = check_corpus("tess", tmp_path / "tess.zip")
    assert report.ok and report.readable == 8
    assert report.sample_rates == {16000: 6, 22050: 1, 24414: 1} and report.formats == {"FLAC": 1, "WAV": 7}


# ---------------------------------------------------------------- CREMA-D


def test_crema_d(tmp_path):
    root = tmp_path / "CREMA-D"
    for name in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_DFA_SAD_LO", "1091_TIE_NEU_MD", "1002_WSI_FEA_XX",
                 "1002_ITS_DIS_HI", "1092_DFA_ANG_XX", "1001_XYZ_ANG_XX", "1001_DFA_ANG"):
        tone(root / "AudioWAV" / f"{name}.wav")
    (root / "AudioMP3").mkdir()
    (root / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"an mp3 copy")  # kept: the WAV
    utts = open_corpus("crema-d", root).utterances()
    assert [u.key for u in utts] == ["crema-d/1001_DFA_ANG_XX", "crema-d/1001_IEO_HAP_HI", "crema-d/1002_DFA_SAD_LO",
                                     "crema-d/1002_ITS_DIS_HI", "crema-d/1002_WSI_FEA_XX", "crema-d/1091_TIE_NEU_MD"]
    assert [u.emotion for u in utts] == ["angry", "happy", "sad", "disgust", "fearful", "neutral"]
    assert all(u.path.endswith(".wav") for u in utts)
    assert utts[1].field("level") == "high" and utts[0].field("level") == "unspecified" and utts[0].field("sentence") == "DFA"
    assert {u.gender for u in utts} == {"unknown"}  # no VideoDemographics.csv
    corpus = open_corpus("crema-d", root)
    corpus.utterances()
    reasons = dict(corpus.skipped)
    assert reasons[str(root / "AudioWAV" / "1092_DFA_ANG_XX.wav")] == "CREMA-D actor 1092 is not in 1001-1091"
    assert "sentence" in reasons[str(root / "AudioWAV" / "1001_XYZ_ANG_XX.wav")]
    assert "not a CREMA-D file name" in reasons[str(root / "AudioWAV" / "1001_DFA_ANG.wav")]
    assert reasons[str(root / "AudioMP3" / "1001_DFA_ANG_XX.mp3")] == "a second copy of crema-d/1001_DFA_ANG_XX"
    (root / "docs").mkdir()
    (root / "docs" / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n")
    genders = {u.speaker: u.gender for u in open_corpus("crema-d", root).utterances()}
    assert genders == {"1001": "male", "1002": "female", "1091": "unknown"}


# ---------------------------------------------------------------- EmoDB


def test_emodb(tmp_path):
    names = {"03a01Fa": "happy", "08a02Wb": "angry", "16b10Tc": "sad", "13a05Ea": "disgust", "14a07Aa": "fearful",
             "09b03Na": "neutral", "10b01La": None, "11b02Lb": None, "01a01Fa": None, "03a01Fa_copy": None}
    for stem in names:
        tone(tmp_path / "wav" / f"{stem}.wav")
    corpus = open_corpus("emodb", tmp_path)
    utts = corpus.utterances()
    assert {u.key.split("/")[1]: u.emotion for u in utts} == {k: v for k, v in names.items() if v}
    assert {u.speaker: u.gender for u in utts} == {"03": "male", "08": "female", "16": "female", "13": "female",
                                                    "14": "female", "09": "female"}
    assert utts[0].field("text") == "a01" and utts[0].field("version") == "a"
    counts = corpus.skip_counts()
    assert counts["EmoDB label L (boredom) has no emovox emotion"] == 2
    assert counts["EmoDB has no speaker 01"] == 1 and len(corpus.skipped) == 4


# ---------------------------------------------------------------- folder tree


def test_synonyms():
    for word, emotion in [("Anger", "angry"), ("HAPPINESS", "happy"), ("joy", "happy"), ("sadness", "sad"),
                          ("afraid", "fearful"), ("fear", "fearful"), ("Surprise", "surprised"),
                          ("disgusted", "disgust"), ("calm", "calm"), (" neutral ", "neutral")]:
        assert from_synonym(word) == emotion
    assert from_synonym("boredom") is None
    assert all(from_synonym(e) == e for e in EMOTIONS)


def test_folder_tree(tmp_path):
    root = tmp_path / "mine"
    tone(root / "Angry" / "a.wav")
    tone(root / "happiness" / "day1" / "b.flac")
    tone(root / "sad" / "joy" / "c.wav")        # the nearest emotion folder wins
    tone(root / "NEUTRAL" / "calm" / "d.wav")
    tone(root / "misc" / "e.wav")
    tone(root / "f.wav")
    corpus = open_corpus("folder", root)
    utts = corpus.utterances()
    assert [(u.name, u.emotion) for u in utts] == [("Angry/a", "angry"), ("NEUTRAL/calm/d", "calm"),
                                                   ("happiness/day1/b", "happy"), ("sad/joy/c", "happy")]
    assert all(not u.speaker_known and u.speaker == u.name and u.gender == "unknown" for u in utts)
    assert sorted(corpus.skipped) == [(str(root / "f.wav"), "no folder above it names an emotion"),
                                      (str(root / "misc" / "e.wav"), "no folder above it names an emotion")]
    zipped = open_corpus("folder", zip_tree(root, tmp_path / "mine.zip")).utterances()
    assert [u.key for u in zipped] == [u.key for u in utts]
    with pytest.raises(FileNotFoundError, match="no labelled audio.*1 skipped"):
        open_corpus("folder", root / "misc").utterances()


# ---------------------------------------------------------------- manifest


def test_manifest_csv(tmp_path):
    for name in "abcdefg":
        tone(tmp_path / "clips" / f"{name}.wav")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,speaker,gender,notes\n"
                        "clips/a.wav,angry,s1,Female,x\n"      # 2
                        "clips/b.wav,Happiness,s1,,\n"         # 3: gender from line 2
                        "clips/c.wav,boredom,s2,male,\n"       # 4: unknown label
                        "clips/missing.wav,sad,s2,male,\n"     # 5: missing file
                        "clips/d.wav,sad\n"                    # 6: too few fields
                        "\n"
                        "clips/e.wav,sad,s1,m,\n"              # 8: s1 is female on line 2
                        "clips/f.wav,neutral,,,\n"             # 9: its own speaker
                        "clips/g.wav,sad,s3,other,\n"          # 10: bad gender
                        ",sad,s3,,\n")                         # 11: no path
    corpus = open_corpus("manifest", manifest)
    utts = corpus.utterances()
    assert [(u.name, u.emotion, u.speaker, u.gender, u.speaker_known) for u in utts] == [
        ("clips/a", "angry", "s1", "female", True), ("clips/b", "happy", "s1", "female", True),
        ("clips/f", "neutral", "clips/f", "unknown", False)]
    assert all(Path(u.path).is_file() and u.corpus == "manifest" for u in utts)
    lines = {int(where.rsplit(":", 1)[1]): reason for where, reason in corpus.skipped}
    assert sorted(lines) == [4, 5, 6, 8, 10, 11]
    assert "boredom" in lines[4] and "no such file" in lines[5] and "2 fields" in lines[6]
    assert "female on line 2" in lines[8] and "gender" in lines[10] and "empty" in lines[11]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\nclips/a.wav,angry\n")
    with pytest.raises(ValueError, match="header"):
        open_corpus("manifest", bad).utterances()


def test_manifest_jsonl(tmp_path):
    tone(tmp_path / "x" / "a.flac")
    tone(tmp_path / "x" / "b.flac")
    manifest = tmp_path / "x" / "list.jsonl"
    rows = [{"path": "a.flac", "label": "fear", "speaker": 7}, "{not json", [1, 2], {"path": "b.flac"},
            {"path": "b.flac", "label": "Surprise", "gender": "F"}, {"path": "a.flac", "label": "fear"}]
    manifest.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows[:3]) + "\n\n"
                        + "\n".join(json.dumps(r) for r in rows[3:]) + "\n")
    corpus = open_corpus("manifest", manifest)
    utts = corpus.utterances()
    assert [(u.name, u.emotion, u.speaker, u.gender) for u in utts] == [("a", "fearful", "7", "unknown"),
                                                                        ("b", "surprised", "b", "female")]
    lines = {int(where.rsplit(":", 1)[1]): reason for where, reason in corpus.skipped}
    assert sorted(lines) == [2, 3, 5, 7]
    assert "not JSON" in lines[2] and "not a JSON object" in lines[3] and "empty" in lines[5]
    assert "second copy" in lines[7]


# ---------------------------------------------------------------- SAVEE and data check on the real files


@pytest.mark.skipif(not SAVEE.is_dir(), reason=f"SAVEE not found at {SAVEE}")
def test_savee_real_and_data_check(capsys):
    corpus = open_corpus("savee", SAVEE)
    utts = corpus.utterances()
    assert len(utts) == 480 and len({u.key for u in utts}) == 480
    assert Counter(u.speaker for u in utts) == {s: 120 for s in ("DC", "JE", "JK", "KL")}
    assert Counter(u.emotion for u in utts) == {**{e: 60 for e in ("angry", "disgust", "fearful", "happy", "sad",
                                                                     "surprised")}, "neutral": 120}
    assert [Path(w).name for w, _ in corpus.skipped] == ["SHA256SUMS.wav"]  # a text file with a .wav name
    assert main(["data", "check", str(SAVEE), "--corpus", "savee", "--format", "json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == report["readable"] == 480 and report["unreadable"] == [] and report["duplicates"] == []
    assert len(report["speakers"]) == 4 and len(report["labels"]) == 7 and report["genders"] == {"male": 4}
    assert report["sample_rates"] == {"44100": 480} and report["channels"] == {"1": 480}


def test_data_check_duplicates_and_unreadable(tmp_path, capsys):
    root = tmp_path / "mine"
    tone(root / "angry" / "a.wav")
    tone(root / "angry" / "a_again.flac", fmt="FLAC")       # the same samples in another container
    tone(root / "sad" / "b.wav", rate=8000, freq=220)
    tone(root / "sad" / "c.wav", freq=330)
    (root / "sad" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 8)
    (root / "sad" / "empty.wav").write_bytes(b"")
    tone(root / "notes" / "x.wav")
    report = check_corpus("folder", root, workers=2)
    assert report.files == 6 and report.readable == 4 and not report.ok
    assert report.duplicates == [[str(root / "angry" / "a.wav"), str(root / "angry" / "a_again.flac")]]
    assert [Path(w).name for w, _ in report.unreadable] == ["broken.wav", "empty.wav"]
    assert dict(report.unreadable)[str(root / "sad" / "empty.wav")] == "empty file"
    assert report.labels == {"angry": 2, "sad": 4} and report.speakers == {"?": 6}
    assert report.sample_rates == {8000: 1, 16000: 3}
    assert report.skipped == [(str(root / "notes" / "x.wav"), "no folder above it names an emotion")]
    text = format_table(report)
    assert "identical audio: 1 groups" in text and "broken.wav" in text and "each is its own speaker" in text
    assert main(["data", "check", str(root), "--corpus", "folder", "-q"]) == 1
    assert "unreadable: 2" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--corpus", "nope", "-q"]) == 2


def test_registry_lists_every_reader():
    assert {"ravdess", "savee", "tess", "crema-d", "emodb", "folder", "manifest"} <= set(CORPORA)
