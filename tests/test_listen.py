"""Live input: a file played as a microphone, a fake PortAudio device, the CLI session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
import soundfile as sf

from emovox import audio
from emovox.cli import main
from emovox.inference import Recognizer
from emovox.live_input import Microphone, MicrophoneError, file_blocks

from .conftest import tiny_files


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    parts = [np.zeros(8000, np.float32)]
    for f in tiny_files()[8:12]:
        parts += [audio.load(f), np.zeros(16000, np.float32)]
    wave = np.concatenate(parts)
    path = tmp_path_factory.mktemp("live") / "session.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    return path, wave


def _fake_sounddevice(wave: np.ndarray, rate: int):
    """A stand-in for the sounddevice module: one input device that plays ``wave`` through the
    callback from another thread, in PortAudio's (frames, channels) blocks."""
    mod = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        if device not in (None, 0, "fake mic"):
            raise ValueError(f"No input device matching {device!r}")
        return {"name": "fake mic", "default_samplerate": float(rate)}

    class InputStream:
        def __init__(self, device, channels, samplerate, blocksize, dtype, callback):
            self.blocksize, self.callback = blocksize, callback
            self.stopped = threading.Event()

        def start(self):
            def run():
                for s in range(0, len(wave), self.blocksize):
                    if self.stopped.is_set():
                        return
                    block = wave[s:s + self.blocksize]
                    self.callback(np.stack([block, block], axis=1), len(block), None, None)
            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()

        def stop(self):
            self.stopped.set()

        def close(self):
            pass

    mod.PortAudioError, mod.query_devices, mod.InputStream = PortAudioError, query_devices, InputStream
    return mod


def test_microphone_blocks_drive_the_engine_like_a_file(tiny_model, session, monkeypatch):
    path, wave = session
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(wave, 16000))
    rec = Recognizer.load(tiny_model, threads=1)
    engine = rec.stream()
    received = 0
    with Microphone(block_seconds=0.1) as mic:
        for block in mic:
            engine.push(block)
            received += len(block)
            if received >= len(wave):
                break
    assert received == len(wave)
    live, offline = engine.finish(), rec.timeline(path)
    assert live.cell_labels == offline.cell_labels
    np.testing.assert_allclose(live.probabilities, offline.probabilities, atol=1e-5)


def test_microphone_resamples_other_device_rates(session, monkeypatch):
    _, wave = session
    x44 = audio.from_array(wave, 16000, 44100)
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(x44, 44100))
    got = 0
    with Microphone(block_seconds=0.2) as mic:
        for block in mic:
            assert block.dtype == np.float32 and block.ndim == 1
            got += len(block)
            if got >= len(wave) - 2000:  # the resampler holds back a few ms
                break
    assert abs(got - len(wave)) < 2000


def test_missing_device_or_portaudio_is_a_clear_error(session, monkeypatch, capsys):
    _, wave = session
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(wave, 16000))
    with pytest.raises(MicrophoneError, match="no input device"):
        Microphone("usb headset")
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not importable
    with pytest.raises(MicrophoneError, match="pip install sounddevice"):
        Microphone()
    assert main(["listen", "--plain"]) == 2
    assert "sounddevice" in capsys.readouterr().err


def test_file_blocks_are_paced_or_fast(session):
    path, wave = session
    blocks = list(file_blocks(path, block_seconds=0.25, realtime=False))
    assert {len(b) for b in blocks[:-1]} == {4000}
    np.testing.assert_array_equal(np.concatenate(blocks), wave)


def test_cli_listen_session_matches_timeline(tiny_model, session, tmp_path, capsys):
    path, _ = session
    saved = tmp_path / "session.json"
    assert main(["listen", "--input", str(path), "--fast", "--plain", "--model", str(tiny_model),
                 "--save", str(saved), "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "listening" in out and "end of input" in out
    assert sum(line.strip().endswith("silence") for line in out.splitlines()) >= 2
    live = json.loads(saved.read_text())
    assert main(["timeline", str(path), "--model", str(tiny_model), "-q", "--format", "json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert live["segments"] == offline["segments"]
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_cli_listen_with_an_emotion_list_matches_that_timeline(tiny_model, session, tmp_path, capsys):
    path, _ = session
    saved = tmp_path / "session.json"
    assert main(["listen", "--input", str(path), "--fast", "--plain", "--model", str(tiny_model),
                 "--emotions", "sad,neutral,angry", "--save", str(saved)]) == 0
    cells = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    shown = {cell[1] for cell in cells} | {name for cell in cells for name in cell[2::2]}  # label, then top 3
    assert len(cells) >= 4 and shown <= {"sad", "neutral", "angry", "silence", "uncertain"}  # the list's only
    live = json.loads(saved.read_text())
    assert main(["timeline", str(path), "--model", str(tiny_model), "-q", "--format", "json",
                 "--emotions", "sad,neutral,angry"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert live["labels"] == offline["labels"] == ["sad", "neutral", "angry"]  # in the order given
    assert live["segments"] == offline["segments"]
    assert {s["label"] for s in live["segments"]} <= {"angry", "neutral", "sad", "silence"}


def test_the_live_display_and_inputs_import_neither_torch_nor_matplotlib():
    code = ("import sys, numpy as np; from emovox.labels import EMOTIONS; from emovox.live_input import file_blocks; "
            "from emovox.live_display import LiveDisplay; from emovox.timeline import Cell; "
            "probs = np.full(8, 1 / 8); probs[4] = 0.5; "
            "LiveDisplay(EMOTIONS)._render(Cell(0, 0.0, 1.25, 1.0, probs), probs, 'angry'); "
            "heavy = {'torch', 'matplotlib'} & set(sys.modules); assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cli_listen_speaker_norm_adapts_to_the_speaker_so_far(session, tmp_path, capsys):
    from emovox.inference.recognizer import RUNNING_WARMUP

    path, wave = session
    saved = tmp_path / "adapted.json"
    # the bundled model: a trained one, whose answers a speaker reference moves
    assert main(["listen", "--input", str(path), "--fast", "--plain", "--backend", "onnx", "--threads", "1",
                 "--speaker-norm", "--save", str(saved)]) == 0
    assert "mean answer of the speech so far" in capsys.readouterr().err
    rec = Recognizer.load(backend="onnx", threads=1)
    engine = rec.stream(running=RUNNING_WARMUP)
    engine.push(wave)
    expected = [c["probabilities"] for c in engine.finish().to_dict()["cells"]]
    live = [c["probabilities"] for c in json.loads(saved.read_text())["cells"]]
    plain = [c["probabilities"] for c in rec.timeline(path).to_dict()["cells"]]
    assert [p is None for p in live] == [p is None for p in expected] == [p is None for p in plain]
    speech = [i for i, p in enumerate(live) if p is not None]
    assert len(speech) > RUNNING_WARMUP
    for i in speech:
        assert live[i] == pytest.approx(expected[i], abs=1e-3)
    assert live[speech[0]] == pytest.approx(plain[speech[0]], abs=1e-3)  # before the warm-up: as it is
    assert any(live[i] != pytest.approx(plain[i], abs=0.02) for i in speech[-3:])  # after it: adapted
