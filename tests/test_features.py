"""Feature images: shapes, a known tone, librosa parity, batch consistency, settings."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch

from emovox.features import FeatureConfig, FeatureExtractor, extract

SR = 16_000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("kind, bins", [("spectrogram", 257), ("mel", 64), ("mfcc", 40)])
def test_shapes(kind, bins):
    cfg = FeatureConfig(kind=kind)
    x = extract(np.zeros((3, 16_000), np.float32) + tone(300), cfg)
    assert x.shape == (3, 1, bins, cfg.frames(16_000)) == (3, 1, cfg.bins, 63)
    assert torch.isfinite(x).all()


def test_deltas_add_two_channels():
    x = extract(tone(300), FeatureConfig(kind="mfcc", deltas=True))
    assert x.shape[:3] == (1, 3, 40)
    # the delta of a steady tone is ~0 away from the edges
    assert x[0, 1, :, 5:-5].abs().mean() < 0.1 * x[0, 0].abs().mean()


def test_known_tone_peaks_at_its_frequency():
    cfg = FeatureConfig(kind="spectrogram", normalize=False)
    db = FeatureExtractor(cfg).power_db(torch.from_numpy(tone(1000))[None])[0]
    peak_hz = db[:, 10].argmax().item() * SR / cfg.n_fft
    assert abs(peak_hz - 1000) <= SR / cfg.n_fft
    mel_cfg = FeatureConfig(kind="mel", normalize=False)
    mel = FeatureExtractor(mel_cfg).power_db(torch.from_numpy(tone(1000))[None])[0]
    centres = librosa.mel_frequencies(n_mels=mel_cfg.n_mels + 2, fmax=SR / 2)[1:-1]
    assert abs(centres[mel[:, 10].argmax().item()] - 1000) < 100


@pytest.mark.parametrize("kind", ["spectrogram", "mel", "mfcc"])
def test_matches_librosa(kind):
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(24_000)).astype(np.float32)
    cfg = FeatureConfig(kind=kind, normalize=False)
    ours = extract(y, cfg)[0, 0].numpy()
    common = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length)
    if kind == "spectrogram":
        ref = librosa.power_to_db(np.abs(librosa.stft(y, **common)) ** 2, top_db=80)
    elif kind == "mel":
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=64, **common), top_db=80)
    else:
        ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=40, n_mels=64, **common)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(1)
    batch = (0.1 * rng.standard_normal((4, 8000))).astype(np.float32)
    ex = FeatureExtractor(FeatureConfig(kind="mfcc", deltas=True))
    together = ex(torch.from_numpy(batch))
    for i in range(4):
        torch.testing.assert_close(together[i], ex(torch.from_numpy(batch[i]))[0], atol=1e-4, rtol=1e-4)


def test_normalized_images_are_standardised_and_gain_invariant():
    x = extract(tone(440) + 0.01 * np.random.default_rng(2).standard_normal(SR).astype(np.float32), FeatureConfig())
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    y = extract(0.25 * (tone(440) + 0.01 * np.random.default_rng(2).standard_normal(SR).astype(np.float32)), FeatureConfig())
    torch.testing.assert_close(x, y, atol=1e-3, rtol=1e-3)


def test_config_validation_and_key():
    with pytest.raises(ValueError, match="kind"):
        FeatureConfig(kind="chroma")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(kind="mfcc", n_mfcc=80, n_mels=64)
    with pytest.raises(ValueError, match="unknown feature settings"):
        FeatureConfig.from_dict({"kind": "mel", "bogus": 1})
    a = FeatureConfig()
    assert a.key() == FeatureConfig.from_dict(a.to_dict()).key()
    assert a.key() != dataclasses.replace(a, hop_length=160).key()


@pytest.mark.parametrize("n_fft,win,hop", [(512, 400, 256), (1024, 1024, 256), (512, 512, 160), (511, 400, 128)])
def test_the_export_kernel_of_the_spectrum_equals_torch_stft(monkeypatch, n_fft, win, hop):
    """ONNX exports compute |STFT|² as one matrix product (onnxruntime's STFT is slow): same frames, same values."""
    ex = FeatureExtractor(FeatureConfig(kind="spectrogram", n_fft=n_fft, win_length=win, hop_length=hop))
    rng = np.random.default_rng(3)
    for n in (n_fft, 1000, 1024, 8000, 8191):
        wave = torch.from_numpy((0.1 * rng.standard_normal((2, n))).astype(np.float32))
        ref = ex.power_spectrum(wave)
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        got = ex.power_spectrum(wave)
        monkeypatch.undo()
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, atol=1e-5 * float(ref.max()), rtol=0)
