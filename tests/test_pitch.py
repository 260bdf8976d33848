"""The pitch tracker: known tones, noise, level, batches, frames, and a real voice against pyin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox import audio
from emovox.features import FeatureConfig, FeatureExtractor
from emovox.pitch import REFERENCE_HZ, VOICED_APERIODICITY, PitchTracker

from .conftest import tiny_files

SR = 16_000


def voice(f0: float, seconds: float = 1.0, harmonics: int = 8) -> np.ndarray:
    """A vowel-like tone: ``harmonics`` partials of ``f0`` with falling amplitudes."""
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1)).astype(np.float32) * 0.2


def track(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = PitchTracker(SR, 256)(torch.from_numpy(wave)[None])[0].numpy()
    return out[0], out[1]


@pytest.mark.parametrize("f0", [80.0, 123.0, 220.0, 410.0])
def test_a_harmonic_tone_gives_its_f0(f0):
    semitones, aperiodicity = track(voice(f0))
    middle = slice(5, -5)  # the edge frames see the zero padding
    hz = REFERENCE_HZ * 2 ** (semitones[middle] / 12)
    np.testing.assert_allclose(hz, f0, rtol=0.01)  # a sixth of a semitone
    assert aperiodicity[middle].max() < 0.05


def test_noise_is_aperiodic():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    _, aperiodicity = track(noise)
    assert (aperiodicity[5:-5] > VOICED_APERIODICITY).mean() > 0.9


def test_level_does_not_move_the_track():
    wave = voice(150.0) + 0.01 * np.random.default_rng(1).standard_normal(SR).astype(np.float32)
    a, b = track(wave), track(wave * 0.01)
    np.testing.assert_allclose(a[0], b[0], atol=1e-3)
    np.testing.assert_allclose(a[1], b[1], atol=1e-3)


def test_a_batch_equals_one_by_one_and_frames_match_the_images():
    waves = np.stack([voice(f) for f in (100.0, 200.0, 300.0)])
    tracker = PitchTracker(SR, 256)
    with torch.no_grad():
        together = tracker(torch.from_numpy(waves))
        alone = torch.stack([tracker(torch.from_numpy(w)[None])[0] for w in waves])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-5)
    image, _ = FeatureExtractor(FeatureConfig(kind="mel", pitch=True)).analyse(torch.from_numpy(waves))
    assert image.shape[1] == 64 + 2 and image.shape[-1] == together.shape[-1] == 1 + SR // 256
    torch.testing.assert_close(image[:, -2:], together)


def test_a_window_too_short_for_the_lowest_f0_is_refused():
    with pytest.raises(ValueError, match="two periods"):
        PitchTracker(SR, 256, f_min=30.0, window_seconds=0.05)


def test_a_real_voice_agrees_with_librosa_pyin():
    """Where both call a frame voiced, the F0 is within a semitone of pyin's on most frames."""
    import librosa

    for f in (tiny_files()[0], tiny_files()[20]):  # a male and a female actor
        wave = audio.load(f, SR)
        semitones, aperiodicity = track(wave)
        ref, voiced, _ = librosa.pyin(wave, fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=256)
        n = min(len(ref), len(semitones))
        both = voiced[:n] & (aperiodicity[:n] < VOICED_APERIODICITY)
        assert both.sum() > 15
        ours = REFERENCE_HZ * 2 ** (semitones[:n][both] / 12)
        assert (np.abs(12 * np.log2(ours / ref[:n][both])) < 1).mean() > 0.9
