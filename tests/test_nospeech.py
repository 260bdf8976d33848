"""One no-speech answer: silence, noise, a tone and a click get ``no_speech`` from the Recognizer
(torch and ONNX), ``emovox predict`` (JSON, CSV, results files) and silence from the timeline;
real speech (RAVDESS, SAVEE, and 20 dB quieter) still gets an emotion. The HTTP API is in
tests/test_serve.py (it shares its server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emovox import Recognizer
from emovox.cli import main

from .conftest import SPEECH

RAVDESS_CLIP = SPEECH / "Actor_04" / "03-01-05-02-01-01-04.flac"
SAVEE_CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "savee" / "AudioData" / "DC" / "a01.flac"


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / x.std()


def non_speech(rate: int = 16_000) -> dict[str, np.ndarray]:
    """The issue's five non-speech signals, seeded."""
    rng = np.random.default_rng(13)
    n = 3 * rate
    click = np.zeros(n)
    k = np.arange(int(0.2 * rate))
    click[int(1.4 * rate):int(1.4 * rate) + len(k)] = 0.9 * np.exp(-k / (0.01 * rate)) * rng.standard_normal(len(k))
    return {"silence": np.zeros(n), "white": 0.1 * rng.standard_normal(n), "pink": 0.1 * pink(n, rng),
            "tone": 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate), "click": click}


SIGNALS = list(non_speech())


@pytest.fixture(scope="module")
def recs():
    return {"torch": Recognizer.load(threads=1), "onnx": Recognizer.load(backend="onnx", threads=1)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Each signal as a 16-bit WAV at 44.1 kHz (the Recognizer resamples it), and two real clips."""
    d = tmp_path_factory.mktemp("nospeech")
    out = {}
    for name, x in non_speech(44_100).items():
        sf.write(d / f"{name}.wav", x.astype(np.float32), 44_100, subtype="PCM_16")
        out[name] = d / f"{name}.wav"
    return {**out, "ravdess": RAVDESS_CLIP, "savee": SAVEE_CLIP}


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("rate", [16_000, 8_000, 44_100])
def test_non_speech_is_no_speech(recs, backend, rate):
    rec = recs[backend]
    for name, x in non_speech(rate).items():
        pred = rec.predict(x.astype(np.float32), sample_rate=rate)
        assert pred.answer == "no_speech" and not pred.speech, (name, pred)
        assert pred.label is None and pred.probabilities is None and pred.confidence is None
        assert pred.speech_seconds < rec.min_speech_seconds and not pred.uncertain
        assert pred.to_dict()["probabilities"] is None


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_real_speech_gets_an_emotion_even_quiet(recs, backend):
    rec = Recognizer(recs[backend].backend, measure_speech=True)
    for clip in (RAVDESS_CLIP, SAVEE_CLIP):
        wave, rate = sf.read(clip, dtype="float32")
        for gain in (1.0, 0.1):  # as recorded and 20 dB quieter
            pred = rec.predict(wave * gain, sample_rate=rate)
            assert pred.speech and pred.speech_seconds > 0.5, (clip.name, gain)
            assert pred.answer == pred.label in rec.labels and abs(sum(pred.probabilities.values()) - 1) < 1e-4


def test_predict_many_mixes_speech_no_speech_and_errors(recs, files, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF junk")
    sources = [files["silence"], files["ravdess"], bad, files["tone"], files["savee"]]
    out = dict(recs["onnx"].predict_many(sources, batch_size=2, workers=2))
    assert [out[s].answer for s in (files["silence"], files["tone"])] == ["no_speech"] * 2
    assert out[files["ravdess"]].speech and out[files["savee"]].label in recs["onnx"].labels
    assert out[files["ravdess"]].probabilities == pytest.approx(recs["onnx"].predict(files["ravdess"]).probabilities)
    assert not hasattr(out[bad], "answer")  # an AudioError


def test_the_check_is_configurable(recs):
    rec = recs["onnx"]
    tone = non_speech()["tone"].astype(np.float32)
    always = Recognizer(rec.backend, min_speech_seconds=0)  # the model answers any sound
    pred = always.predict(tone, sample_rate=16_000)
    assert pred.speech and pred.label in rec.labels and pred.speech_seconds is None  # the VAD did not run
    strict = Recognizer(rec.backend, min_speech_seconds=60)
    assert strict.predict(RAVDESS_CLIP).answer == "no_speech"
    with pytest.raises(ValueError, match="min_speech_seconds"):
        Recognizer(rec.backend, min_speech_seconds=-1)
    with pytest.raises(ValueError, match="vad_threshold"):
        Recognizer(rec.backend, vad_threshold=1.5)


def test_the_speech_check_stops_once_it_has_heard_enough(recs, files):
    """By default the VAD stops at min_speech_seconds: the same answers as listening to everything,
    only a speech answer's seconds of speech go unmeasured (measure_speech=True measures them)."""
    from emovox import audio
    from emovox.vad import SpeechDetector, normalize_level, speech_seconds

    fast, full = Recognizer(recs["onnx"].backend), Recognizer(recs["onnx"].backend, measure_speech=True)
    late = np.concatenate([np.zeros(3 * 16_000, np.float32), audio.load(RAVDESS_CLIP)])  # speech after 3 s
    for name, source in [*files.items(), ("late", late)]:
        kw = {"sample_rate": 16_000} if name == "late" else {}
        a, b = fast.predict(source, **kw), full.predict(source, **kw)
        assert (a.answer, a.probabilities) == (b.answer, b.probabilities), name
        assert b.speech_seconds is not None
        assert a.speech_seconds == (None if b.speech else b.speech_seconds), name
    wave, detector = normalize_level(late), SpeechDetector()
    total = speech_seconds(wave, detector=detector)
    heard = speech_seconds(wave, detector=detector, enough=0.3)
    assert 0.3 <= heard < 1.0 < total
    assert speech_seconds(wave, detector=detector, enough=60) == total  # never enough: all of it was heard
    assert speech_seconds(wave, detector=detector, enough=float("inf")) == total


def test_cli_json_csv_and_results_files(files, tmp_path, capsys):
    paths = [str(files[k]) for k in (*SIGNALS, "ravdess", "savee")]
    assert main(["predict", *paths, "--backend", "onnx", "--format", "json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len({tuple(r) for r in rows}) == 1  # every row has the same keys
    by_name = {Path(r["path"]).stem: r for r in rows}
    for name in SIGNALS:
        r = by_name[name]
        assert (r["answer"], r["label"], r["speech"], r["probabilities"]) == ("no_speech", None, False, None), r
    for name in ("03-01-05-02-01-01-04", "a01"):
        assert by_name[name]["speech"] and by_name[name]["answer"] == by_name[name]["label"] is not None
        assert by_name[name]["speech_seconds"] is None  # the VAD stopped once it had heard enough
    assert main(["predict", *paths[-2:], "--backend", "onnx", "--format", "json", "-q", "--measure-speech"]) == 0
    assert all(r["speech_seconds"] > 0.5 for r in json.loads(capsys.readouterr().out))

    assert main(["predict", *paths, "--backend", "onnx", "--format", "csv", "-q"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len({len(r) for r in table}) == 1 and table[0][:6] == ["path", "answer", "label", "uncertain", "speech",
                                                                   "speech_seconds"]
    for r in table[1:]:
        if Path(r[0]).stem in SIGNALS:
            assert r[1:3] == ["no_speech", ""] and r[4] == "0" and r[6:] == [""] * 8, r
        else:
            assert r[1] == r[2] != "" and r[4] == "1" and abs(sum(map(float, r[6:])) - 1) < 1e-3

    assert main(["predict", *paths, "--backend", "onnx", "-q"]) == 0  # the table
    lines = {Path(line.split("\t")[0]).stem: line for line in capsys.readouterr().out.splitlines()}
    assert all("no_speech" in lines[name] for name in SIGNALS) and "no_speech" not in lines["a01"]

    for ext in ("csv", "jsonl"):
        out = tmp_path / f"results.{ext}"
        assert main(["predict", *paths, str(tmp_path / "missing.wav"), "--backend", "onnx", "-q", "-o", str(out)]) == 1
        if ext == "jsonl":
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            assert len(rows) == 7 and len({tuple(r) for r in rows}) == 1
            assert sum(r["answer"] == "no_speech" for r in rows) == 5
        else:
            with open(out, newline="") as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == 7 and sum(r["answer"] == "no_speech" for r in rows) == 5


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_timeline_has_no_emotion_for_non_speech(recs, backend):
    rec = recs[backend]
    for name, x in non_speech(44_100).items():
        tl = rec.timeline(x.astype(np.float32), sample_rate=44_100)
        assert {s.label for s in tl.segments} == {"silence"}, name
        assert np.isnan(tl.probabilities).all()
