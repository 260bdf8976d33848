"""Tests for emovox.audio: every format to 16 kHz mono float32, and clear errors for bad input."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from emovox import audio
from emovox.audio import AudioError

RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess" / "Audio_Speech_Actors_01-24"

FREQ = 440.0
LEFT, RIGHT = 0.5, 0.25  # stereo fixtures: the same tone at two levels, so the mono mix peaks at 0.375


def tone(rate: int, seconds: float = 1.0, channels: int = 2, freq: float = FREQ) -> np.ndarray:
    """A sine as (frames, channels) float32; channel c has amplitude LEFT, RIGHT, ..."""
    t = np.arange(int(round(rate * seconds))) / rate
    wave = np.sin(2 * np.pi * freq * t)
    levels = [LEFT, RIGHT][:channels] if channels <= 2 else [LEFT] * channels
    return np.stack([a * wave for a in levels], axis=1).astype(np.float32)


def dominant_hz(wave: np.ndarray, rate: int = audio.WORKING_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


def encode_av(path: Path, codec: str, rate: int, fmt: str | None = None) -> Path:
    """Write the stereo tone with an FFmpeg encoder through PyAV."""
    assert codec in av.codecs_available, f"PyAV build lacks the {codec} encoder"
    samples = tone(rate)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        for i in range(0, len(samples), 1024):
            chunk = np.ascontiguousarray(samples[i:i + 1024].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):  # PyAV re-frames to the codec's frame size
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_sf(path: Path, rate: int = 44_100, **kw) -> Path:
    sf.write(str(path), tone(rate), rate, **kw)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The 1 s stereo tone in every supported format (44.1 kHz, or 48 kHz for Opus)."""
    d = tmp_path_factory.mktemp("formats")
    return {
        "wav": write_sf(d / "tone.wav", subtype="PCM_16"),
        "flac": write_sf(d / "tone.flac"),
        "ogg-vorbis": write_sf(d / "tone.ogg", format="OGG", subtype="VORBIS"),
        "aiff": write_sf(d / "tone.aiff", subtype="PCM_24"),
        "mp3": encode_av(d / "tone.mp3", "libmp3lame", 44_100),
        "opus": encode_av(d / "tone.opus", "libopus", 48_000),
        "m4a": encode_av(d / "tone.m4a", "aac", 44_100),
        "aac-adts": encode_av(d / "tone.aac", "aac", 44_100, fmt="adts"),
        "mp4": encode_av(d / "tone.mp4", "aac", 44_100),
        "webm": encode_av(d / "tone.webm", "libopus", 48_000),
    }


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg-vorbis", "aiff", "mp3", "opus", "m4a", "aac-adts", "mp4", "webm"])
def test_every_format_decodes_to_16k_mono(files, kind):
    wave = audio.load(files[kind])
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.flags.c_contiguous
    # lossy encoders pad: AAC adds up to ~45 ms (ADTS has no gapless info), MP3/Opus are trimmed exactly
    assert 16_000 - 160 <= len(wave) <= 16_000 + 800, len(wave)
    assert abs(dominant_hz(wave) - FREQ) <= 3
    # the mono mix of a 0.5 and a 0.25 sine peaks at 0.375 (RMS 0.265); lossy codecs drift a few %
    middle = wave[4000:12000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx((LEFT + RIGHT) / 2 / np.sqrt(2), rel=0.1)
    assert np.abs(wave).max() <= 1.0


@pytest.mark.parametrize("kind", ["m4a", "aac-adts", "mp4", "webm"])
def test_formats_libsndfile_cannot_read_go_through_ffmpeg(files, kind):
    with pytest.raises(sf.LibsndfileError):
        sf.read(str(files[kind]))
    assert abs(dominant_hz(audio.load(files[kind])) - FREQ) <= 3


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_any_rate_resampled_to_16k(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    sf.write(str(path), tone(rate, seconds=1.5, channels=1), rate, subtype="FLOAT")
    wave = audio.load(path)
    assert abs(len(wave) - 24_000) <= 1
    assert abs(dominant_hz(wave) - FREQ) <= 3
    # HQ resampling keeps the level of an in-band tone
    assert np.abs(wave[2000:-2000]).max() == pytest.approx(LEFT, rel=0.01)


def test_other_target_rate_and_same_rate_is_untouched(files, tmp_path):
    assert abs(len(audio.load(files["flac"], sample_rate=22_050)) - 22_050) <= 1
    path = tmp_path / "16k.wav"
    x = tone(16_000, channels=1)[:, 0]
    sf.write(str(path), x, 16_000, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load(path), x)


def test_stereo_downmix_is_channel_mean(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.9, 0.9, size=(4000, 2)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), stereo, 16_000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path), stereo.mean(axis=1), atol=1e-7)


def test_flac_named_wav_is_decoded_by_content(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, tone(44_100), 44_100, format="FLAC")
    path = tmp_path / "actually_flac.wav"
    path.write_bytes(buf.getvalue())
    wave = audio.load(path)
    assert abs(len(wave) - 16_000) <= 1 and abs(dominant_hz(wave) - FREQ) <= 3


def test_m4a_named_wav_falls_back_to_ffmpeg(files, tmp_path):
    path = tmp_path / "actually_aac.wav"
    path.write_bytes(files["m4a"].read_bytes())
    assert abs(dominant_hz(audio.load(path)) - FREQ) <= 3


# ---------------------------------------------------------------- sources


@pytest.mark.parametrize("kind", ["wav", "m4a"])
def test_bytes_and_file_objects(files, kind):
    expected = audio.load(files[kind])
    data = files[kind].read_bytes()
    np.testing.assert_array_equal(audio.load(data), expected)
    np.testing.assert_array_equal(audio.load(bytearray(data)), expected)
    np.testing.assert_array_equal(audio.load(io.BytesIO(data)), expected)
    with open(files[kind], "rb") as fh:
        np.testing.assert_array_equal(audio.load(fh), expected)
    assert audio.load(str(files[kind])).shape == expected.shape  # str as well as Path


def test_unseekable_stream(files):
    class Pipe:  # only read(), like sys.stdin.buffer or a socket file
        def __init__(self, data):
            self._buf = io.BytesIO(data)

        def read(self, n=-1):
            return self._buf.read(n)

    wave = audio.load(Pipe(files["flac"].read_bytes()))
    assert abs(len(wave) - 16_000) <= 1


def test_wrong_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="int"):
        audio.load(123)
    with pytest.raises(TypeError, match="binary"):
        audio.load(io.StringIO("RIFF"))


# ---------------------------------------------------------------- bad input


def assert_audio_error(source, name: str, reason: str) -> AudioError:
    with pytest.raises(AudioError) as info:
        audio.load(source)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.source == name and reason in err.reason
    assert str(err) == f"cannot read audio {name!r}: {err.reason}"
    return err


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    assert_audio_error(path, str(path), "file not found")


def test_directory(tmp_path):
    assert_audio_error(tmp_path, str(tmp_path), "directory")


def test_empty_file_and_empty_bytes(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_audio_error(path, str(path), "empty file")
    assert_audio_error(b"", "<bytes>", "empty file")


@pytest.mark.parametrize("cut, reason", [
    (12, "not a decodable audio file"),  # inside the RIFF header
    (30, "not a decodable audio file"),  # inside the fmt chunk: no 'data' chunk
    (44, "no audio samples"),            # complete header, no sample data
])
def test_truncated_wav(files, tmp_path, cut, reason):
    path = tmp_path / f"cut{cut}.wav"
    path.write_bytes(files["wav"].read_bytes()[:cut])
    assert_audio_error(path, str(path), reason)


def test_wav_truncated_in_its_data_keeps_what_is_there(files, tmp_path):
    # libsndfile (and FFmpeg) read a wav cut after its header up to the cut, without error:
    # 100 bytes = 44 header + 56 data = 14 stereo 16-bit frames at 44.1 kHz -> 5 at 16 kHz
    path = tmp_path / "cut100.wav"
    path.write_bytes(files["wav"].read_bytes()[:100])
    assert 4 <= len(audio.load(path)) <= 6


def test_random_bytes_named_wav(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    err = assert_audio_error(path, str(path), "not a decodable audio file (")
    assert "soundfile:" in err.reason and "ffmpeg:" in err.reason


def test_text_named_mp3(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("these are my meeting notes, not a recording\n" * 20)
    assert_audio_error(path, str(path), "not a decodable audio file")


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert_audio_error(path, str(path), "no audio stream")


def test_wav_with_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros((0, 2), np.float32), 16_000)
    assert path.stat().st_size > 0
    assert_audio_error(path, str(path), "no audio samples")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_wav(tmp_path, bad):
    path = tmp_path / "nonfinite.wav"
    x = tone(16_000, channels=1)[:, 0]
    x[100] = bad
    sf.write(str(path), x, 16_000, subtype="FLOAT")
    assert_audio_error(path, str(path), "contains NaN or infinite samples")


def test_audio_error_survives_pickling():
    err = pickle.loads(pickle.dumps(AudioError("a.wav", "empty file")))
    assert (err.source, err.reason, str(err)) == ("a.wav", "empty file", "cannot read audio 'a.wav': empty file")


# ---------------------------------------------------------------- from_array


def test_from_array_scales_integers():
    out = audio.from_array(np.array([0, 16384, -32768, 32767], np.int16), 16_000)
    np.testing.assert_allclose(out, [0, 0.5, -1, 32767 / 32768])
    out = audio.from_array(np.array([128, 0, 255], np.uint8), 16_000)
    np.testing.assert_allclose(out, [0, -1, 127 / 128])
    out = audio.from_array(np.array([-(2 ** 31), 2 ** 30], np.int32), 16_000)
    np.testing.assert_allclose(out, [-1, 0.5])
    assert out.dtype == np.float32


def test_from_array_layouts():
    frames = np.linspace(-1, 1, 1000, dtype=np.float32)
    stereo = np.stack([frames, np.zeros_like(frames)], axis=1)  # (frames, channels)
    np.testing.assert_allclose(audio.from_array(stereo, 16_000), frames / 2)
    np.testing.assert_allclose(audio.from_array(stereo.T, 16_000), frames / 2)  # (channels, frames)
    six = np.tile(frames[:, None], (1, 6))  # 5.1 as (frames, channels)
    np.testing.assert_allclose(audio.from_array(six.T, 16_000), frames, atol=1e-6)
    np.testing.assert_allclose(audio.from_array(frames[:, None], 16_000), frames)  # (frames, 1)


def test_from_array_resamples_keeps_values_and_copies():
    x = tone(48_000, channels=1)[:, 0]
    out = audio.from_array(x, 48_000)
    assert len(out) == 16_000 and abs(dominant_hz(out) - FREQ) <= 3
    loud = np.array([1.5, -2.0, 0.25], np.float64)
    out = audio.from_array(loud, 16_000)
    np.testing.assert_allclose(out, loud)  # not clipped
    assert out.dtype == np.float32 and out.flags.c_contiguous
    same = np.zeros(10, np.float32)
    assert not np.shares_memory(audio.from_array(same, 16_000), same)


@pytest.mark.parametrize("samples, reason", [
    (np.array([0.1, np.nan, 0.2]), "NaN"),
    (np.array([[0.1, np.inf], [0.0, 0.0]]), "infinite"),
    (np.array([1e39, 0.0]), "infinite"),  # finite in float64, inf in float32
    (np.zeros(0, np.float32), "no audio samples"),
    (np.zeros((0, 2), np.float32), "no audio samples"),
    (np.zeros((2, 3, 4)), "1-D or 2-D"),
    (np.array(["a", "b"]), "real numbers"),
    ([[0.1, 0.2], [0.3]], "not an array"),
])
def test_from_array_rejects(samples, reason):
    with pytest.raises(AudioError, match=reason) as info:
        audio.from_array(samples, 16_000, source="clip")
    assert info.value.source == "clip"


@pytest.mark.parametrize("rate", [0, -16_000, float("nan"), "16k", None])
def test_from_array_rejects_bad_sample_rate(rate):
    with pytest.raises(AudioError, match="sample_rate") as info:
        audio.from_array(np.zeros(10), rate)
    assert info.value.source == "<array>"


# ---------------------------------------------------------------- misc


def test_is_audio_file():
    for name in ["a.wav", "b.FLAC", "dir/c.Mp3", "d.opus", "e.m4a", "f.aif", "g.AIFF", "h.webm"]:
        assert audio.is_audio_file(name), name
        assert audio.is_audio_file(Path(name)), name
    for name in ["notes.txt", "wav", "a.wav.bak", "model.safetensors", "README"]:
        assert not audio.is_audio_file(name), name
    assert all(e.startswith(".") and e == e.lower() for e in audio.AUDIO_EXTENSIONS)


def test_import_is_light():
    # av, librosa and torch load only when needed: `import emovox.audio` stays fast
    code = "import sys, emovox.audio; print(sorted({'av', 'librosa', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- real recordings


def test_ravdess_mono_flac():
    path = RAVDESS / "Actor_01" / "03-01-01-01-01-01-01.flac"
    assert path.is_file(), f"RAVDESS not found at {RAVDESS}"
    assert sf.info(str(path)).samplerate == 48_000
    wave = audio.load(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 2.9 <= len(wave) / audio.WORKING_RATE <= 5.3
    assert 0.01 < np.abs(wave).max() <= 1.0  # speech, not silence


def test_ravdess_stereo_flac_is_downmixed():
    path = RAVDESS / "Actor_01" / "03-01-02-01-01-02-01.flac"
    assert path.is_file(), f"RAVDESS not found at {RAVDESS}"
    raw, rate = sf.read(str(path), dtype="float32")
    assert raw.ndim == 2 and raw.shape[1] == 2 and rate == 48_000
    wave = audio.load(path)
    assert 2.9 <= len(wave) / audio.WORKING_RATE <= 5.3
    expected = soxr.resample(raw.mean(axis=1), rate, audio.WORKING_RATE, quality="HQ")
    np.testing.assert_allclose(wave, expected, atol=1e-6)


# ---------------------------------------------------------------- duration limit (decompression bombs)


@pytest.fixture(scope="module")
def five_hours(tmp_path_factory) -> Path:
    """Five hours of silence as FLAC at 8 kHz: about 450 KB that decode to 576 MB of float32."""
    path = tmp_path_factory.mktemp("bomb") / "silence.flac"
    block = np.zeros(8000 * 600, np.float32)
    with sf.SoundFile(str(path), "w", 8000, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(30):
            f.write(block)
    assert path.stat().st_size < 600_000
    return path


def _without_length(flac: Path, dest: Path) -> Path:
    """The FLAC with STREAMINFO's total-samples field zeroed: "length unknown", as a stream has."""
    data = bytearray(flac.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    data[8 + 13] &= 0xF0  # the 36-bit total samples: 4 low bits of byte 13, then bytes 14-17
    data[8 + 14: 8 + 18] = b"\0\0\0\0"
    dest.write_bytes(bytes(data))
    return dest


def test_a_tiny_file_declaring_hours_is_refused_from_its_header(five_hours):
    start = time.perf_counter()
    with pytest.raises(AudioError, match=r"longer than the limit of 14400 s: it declares 18000 s"):
        audio.load(five_hours)  # default limit: 4 h
    with pytest.raises(AudioError, match="declares 18000 s"):
        audio.load(five_hours.read_bytes(), max_seconds=600)
    assert time.perf_counter() - start < 1.0  # nothing was decoded


def test_a_file_without_a_length_stops_decoding_at_the_limit(five_hours, tmp_path):
    import tracemalloc

    unknown = _without_length(five_hours, tmp_path / "unknown.flac")
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match="decodes to more than that"):
            audio.load(unknown, max_seconds=120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30e6  # about 2 minutes of samples, not 5 hours (576 MB)


def test_the_limit_comes_from_the_environment_shared_with_the_server(tmp_path, monkeypatch):
    from emovox.serve.settings import ENV, Settings

    path = write_sf(tmp_path / "one.wav", 16_000)  # 1 s
    assert ENV["max_seconds"] == audio.MAX_SECONDS_ENV == "EMOVOX_MAX_SECONDS"
    monkeypatch.setenv("EMOVOX_MAX_SECONDS", "0.5")
    with pytest.raises(AudioError, match="limit of 0.5 s"):
        audio.load(path)
    assert Settings.from_env().max_seconds == 0.5
    assert len(audio.load(path, max_seconds=2)) == 16_000  # an explicit limit wins
    monkeypatch.setenv("EMOVOX_MAX_SECONDS", "lots")
    with pytest.raises(ValueError, match="EMOVOX_MAX_SECONDS='lots' is not a number"):
        audio.load(path)
    monkeypatch.delenv("EMOVOX_MAX_SECONDS")
    assert audio.duration_limit() == audio.DEFAULT_MAX_SECONDS == 4 * 3600
    with pytest.raises(ValueError, match="positive"):
        audio.load(path, max_seconds=0)


def test_compressed_containers_are_limited_too(tmp_path):
    ogg = tmp_path / "long.ogg"
    with sf.SoundFile(str(ogg), "w", 8000, 1, format="OGG", subtype="VORBIS") as f:
        for _ in range(90):  # 3 minutes, written in small blocks
            f.write(np.zeros(16_000, np.float32))
    with pytest.raises(AudioError, match="limit of 60 s"):
        audio.load(ogg, max_seconds=60)
    m4a = encode_av(tmp_path / "tone.m4a", "aac", 16_000, "mp4")  # decoded by FFmpeg
    with pytest.raises(AudioError, match="limit of 0.5 s"):
        audio.load(m4a, max_seconds=0.5)
    assert len(audio.load(m4a, max_seconds=10)) > 0


@pytest.mark.parametrize("rate", [1, 999, 4_000_000_000])
def test_absurd_sample_rates_in_a_header_are_refused(tmp_path, rate):
    import struct

    body = np.zeros(100, np.int16).tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate,
              min(rate * 2, 2**32 - 1), 2, 16) + b"data" + struct.pack("<I", len(body)))
    with pytest.raises(AudioError):
        audio.load(header + body)
