"""Timeline: streaming decoding, VAD, window/cell/segment logic, streaming = offline, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from emovox import audio
from emovox.cli import main
from emovox.inference import Recognizer
from emovox.timeline import (SILENCE, UNCERTAIN, TimelineConfig, blocks_of, cell_label, merge_segments,
                             smooth_cells)
from emovox.vad import SpeechDetector

from .conftest import tiny_files

SR = 16_000


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer.load(tiny_model, threads=1)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """~20 s: 1.5 s silence, then six real clips separated by 1-2 s of silence (and faint noise)."""
    rng = np.random.default_rng(0)
    parts = [np.zeros(int(1.5 * SR), np.float32)]
    for f in tiny_files()[:6]:
        parts.append(audio.load(f))
        parts.append((rng.standard_normal(int(rng.uniform(1, 2) * SR)) * 1e-4).astype(np.float32))
    wave = np.concatenate(parts)
    path = tmp_path_factory.mktemp("tl") / "conversation.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    return path, wave


# ------------------------------------------------------------------ decoding in blocks

def test_stream_concatenates_to_load(conversation, tmp_path):
    path, _ = conversation
    blocks = list(audio.stream(path, block_seconds=0.7))
    assert len(blocks) > 10 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), audio.load(path))
    # resampled in blocks (48 kHz stereo file) ≈ resampled whole
    x = audio.load(path)[:SR * 4]
    sf.write(tmp_path / "48k.wav", np.stack([np.repeat(x, 3), np.repeat(x, 3)], axis=1), 48_000)
    streamed = np.concatenate(list(audio.stream(tmp_path / "48k.wav", block_seconds=0.5)))
    whole = audio.load(tmp_path / "48k.wav")
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n] - whole[:n]).max() < 1e-3


def test_stream_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + bytes(range(256)) * 20)
    with pytest.raises(audio.AudioError):
        list(audio.stream(bad))
    with pytest.raises(audio.AudioError, match="file not found"):
        list(audio.stream(tmp_path / "missing.wav"))


# ------------------------------------------------------------------ VAD

def test_vad_finds_speech_and_not_silence_or_noise():
    det = SpeechDetector()
    wave = audio.load(tiny_files()[0])
    silence = np.zeros(SR, np.float32)
    noise = (np.random.default_rng(1).standard_normal(SR) * 0.01).astype(np.float32)
    _, flags = det.push(np.concatenate([silence, noise, wave, silence]))
    frames_per_s = SR / 512
    assert not flags[: int(2 * frames_per_s) - 1].any()  # silence, then white noise: no speech
    speech = flags[int(2 * frames_per_s): int(2 * frames_per_s + len(wave) / 512)]
    assert speech.mean() > 0.3  # the RAVDESS sentence is found
    assert not flags[-int(frames_per_s) + 8:].any()  # trailing silence after a short hangover


def test_vad_is_independent_of_block_sizes():
    wave = audio.load(tiny_files()[3])
    whole = SpeechDetector()
    p1 = np.concatenate([whole.push(wave)[0], whole.finish()[0]])
    blocked = SpeechDetector()
    p2 = np.concatenate([blocked.push(b)[0] for b in blocks_of(wave, 777)] + [blocked.finish()[0]])
    assert len(p1) == len(p2) == -(-len(wave) // 512)
    np.testing.assert_allclose(p1, p2, atol=1e-6)


# ------------------------------------------------------------------ cells and segments

def test_cell_label_uses_speech_fraction_and_confidence():
    labels = ("a", "b")
    cfg = TimelineConfig(min_speech=0.25, min_confidence=0.6)
    assert cell_label(0.1, np.array([0.9, 0.1]), labels, cfg) == SILENCE
    assert cell_label(0.5, np.array([0.9, 0.1]), labels, cfg) == "a"
    assert cell_label(0.5, np.array([0.45, 0.55]), labels, cfg) == UNCERTAIN
    assert cell_label(0.5, np.array([np.nan, np.nan]), labels, cfg) == SILENCE


def test_neighbouring_cells_that_agree_merge_into_one_segment():
    labels = ("a", "b")
    starts, ends = np.arange(6.0), np.arange(1.0, 7.0)
    probs = np.array([[np.nan, np.nan], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9], [np.nan, np.nan]])
    speech = np.array([0.0, 1.0, 1.0, 1.0, 0.5, 0.1])
    segs = merge_segments(starts, ends, [SILENCE, "a", "a", "b", "b", SILENCE], probs, speech, labels)
    assert [(s.start, s.end, s.label) for s in segs] == [(0, 1, SILENCE), (1, 3, "a"), (3, 5, "b"), (5, 6, SILENCE)]
    assert segs[1].confidence == pytest.approx(0.7) and segs[2].confidence == pytest.approx(0.8)
    assert segs[3].confidence == pytest.approx(0.9)  # silence: the unvoiced fraction


def test_smoothing_stays_inside_speech_runs():
    probs = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [0, 1]], np.float32)
    mask = np.array([True, True, True, False, True])
    out = smooth_cells(probs, mask, 3)
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    np.testing.assert_allclose(out[1], [2 / 3, 1 / 3])
    assert np.isnan(out[3]).all()
    np.testing.assert_allclose(out[4], [0, 1])  # not averaged across the silent cell
    np.testing.assert_allclose(smooth_cells(probs, mask, 1)[:3], probs[:3])


def test_config_is_checked(rec):
    with pytest.raises(ValueError, match="hop"):
        rec.stream(hop=3.0)  # longer than the 2.5 s window
    assert rec.stream(window=2.0).config.hop == 1.0  # default: half the window
    with pytest.raises(ValueError, match="min_speech"):
        rec.stream(min_speech=0)


# ------------------------------------------------------------------ the engine

def test_timeline_marks_silence_and_classifies_speech(rec, conversation):
    path, wave = conversation
    tl = rec.timeline(path, hop=1.0)
    n = -(-len(wave) // SR)
    assert len(tl.starts) == n and tl.ends[-1] == pytest.approx(len(wave) / SR)
    np.testing.assert_allclose(tl.starts[1:], tl.ends[:-1])  # cells tile the recording
    labels = tl.cell_labels
    assert labels[0] == SILENCE  # 1.5 s of leading silence
    assert sum(lab != SILENCE for lab in labels) >= 6
    speech = ~np.isnan(tl.probabilities).any(axis=1)
    np.testing.assert_allclose(tl.probabilities[speech].sum(axis=1), 1, atol=1e-5)
    segs = tl.segments
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(tl.duration)
    assert all(a.end == pytest.approx(b.start) and a.label != b.label for a, b in zip(segs, segs[1:]))
    assert len(tl.envelope) == -(-len(wave) // 160)


def test_a_timeline_among_a_label_set(tiny_model, rec, conversation):
    path, _ = conversation
    four = ("angry", "happy", "neutral", "sad")
    full = rec.timeline(path, hop=1.0)
    rec4 = Recognizer.load(tiny_model, threads=1, emotions=four)
    for tl in (rec4.timeline(path, hop=1.0), rec4.timeline(path, hop=1.0, speaker_norm=True)):
        assert tuple(tl.labels) == four and tl.probabilities.shape == (len(full.starts), 4)
        speech = ~np.isnan(tl.probabilities).any(axis=1)
        assert np.array_equal(speech, ~np.isnan(full.probabilities).any(axis=1))  # the same speech cells
        np.testing.assert_allclose(tl.probabilities[speech].sum(axis=1), 1, atol=1e-5)
        assert {s.label for s in tl.segments} <= set(four) | {SILENCE, "uncertain"}
        assert tl.to_dict()["labels"] == list(four)


def test_a_running_reference_judges_the_models_answers_before_they_are_folded(tiny_model, rec, conversation):
    from emovox.labels import fold_into

    _, wave = conversation
    four = ("angry", "happy", "neutral", "sad")
    cells = []
    for r in (rec, Recognizer.load(tiny_model, threads=1, emotions=four)):
        engine = r.stream(window=2.5, hop=2.5, running=4)  # one window per cell: cells are window answers
        engine.push(wave)
        cells.append(engine.finish().probabilities)
    speech = ~np.isnan(cells[0]).any(axis=1)
    assert speech.sum() >= 4
    np.testing.assert_allclose(cells[1][speech], fold_into(cells[0][speech], tuple(rec.labels), four), atol=1e-5)


def test_streaming_agrees_with_offline(rec, conversation):
    path, wave = conversation
    offline = rec.timeline(path)
    engine = rec.stream()
    finished = []
    for block in blocks_of(wave, 1234):  # microphone-sized blocks
        finished += engine.push(block)
    assert finished and len(finished) < len(offline.starts)  # cells come out while audio is still arriving
    live = engine.finish()
    assert live.cell_labels == offline.cell_labels
    np.testing.assert_allclose(live.probabilities, offline.probabilities, atol=1e-5)
    from_array = rec.timeline(wave, SR)
    assert from_array.cell_labels == offline.cell_labels


def test_short_and_silent_recordings(rec):
    short = audio.load(tiny_files()[1])[: SR // 2]  # shorter than one window
    tl = rec.timeline(short, SR)
    assert len(tl.starts) == 1 and tl.duration == pytest.approx(0.5)
    quiet = rec.timeline(np.zeros(5 * SR, np.float32), SR)
    assert [s.label for s in quiet.segments] == [SILENCE]
    assert quiet.segments[0].end == pytest.approx(5.0)


def test_window_and_hop_are_configurable(rec, conversation):
    path, _ = conversation
    fine = rec.timeline(path, hop=0.5, window=2.0, smooth=1)
    assert fine.config.window == 2.0 and np.allclose(np.diff(fine.starts), 0.5)
    unsure = rec.timeline(path, min_confidence=0.99)
    assert set(unsure.cell_labels) <= {SILENCE, UNCERTAIN}


# ------------------------------------------------------------------ CLI

def test_cli_timeline_json_csv_and_plot(tiny_model, conversation, tmp_path, capsys):
    path, _ = conversation
    assert main(["timeline", str(path), "--model", str(tiny_model), "-q", "--format", "json",
                 "--plot", str(tmp_path / "tl.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["segments"][0]["label"] == SILENCE
    assert out["config"]["hop"] == 1.25 and out["config"]["window"] == 2.5  # the defaults: half a window
    assert len(out["cells"]) == int(np.ceil(out["duration"] / 1.25))
    assert (tmp_path / "tl.png").stat().st_size > 10_000
    assert main(["timeline", str(path), "--model", str(tiny_model), "-q", "--format", "csv",
                 "-o", str(tmp_path / "tl.csv")]) == 0
    rows = (tmp_path / "tl.csv").read_text().splitlines()
    assert rows[0] == "start,end,label,confidence" and len(rows) == len(out["segments"]) + 1
    assert main(["timeline", str(tmp_path / "nope.wav"), "--model", str(tiny_model), "-q"]) == 2
    assert main(["timeline", str(path), "--model", str(tiny_model), "-q", "--format", "json",
                 "--emotions", "angry,happy,neutral,sad"]) == 0
    among = json.loads(capsys.readouterr().out)
    assert among["labels"] == ["angry", "happy", "neutral", "sad"] and len(among["cells"]) == len(out["cells"])
