"""Figures: each writes a readable PNG, and the axes say what they show."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from emovox.features import FeatureConfig, FeatureExtractor
from emovox.labels import EMOTIONS
from emovox.plots import (clip_figure, confusion_figure, lr_find_figure, plot_clip, plot_confusion,
                          plot_lr_find, plot_training, training_figure)

SR = 16_000


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    """1 s of a 440 Hz tone plus a little noise, deterministic."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)


def png_size(path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def panel_image(ax) -> np.ndarray:
    (im,) = ax.get_images()
    return np.asarray(im.get_array())


# --------------------------------------------------------------------------- clip


def test_clip_figure_axes_and_labels(tone):
    fig = clip_figure(tone, SR, title="tone")
    # four panels then three colour bars (the waveform has none)
    assert len(fig.axes) == 7
    panels, bars = fig.axes[:4], fig.axes[4:]
    assert [ax.get_ylabel() for ax in panels] == ["amplitude", "frequency (Hz)", "mel band", "coefficient"]
    assert panels[-1].get_xlabel() == "time (s)"
    assert [ax.get_ylabel() for ax in bars] == ["dB", "dB", "value"]
    assert fig.get_suptitle() == "tone"
    # one shared time axis spanning the clip
    for ax in panels:
        assert ax.get_xlim() == pytest.approx((0.0, 1.0))
    assert [len(ax.get_images()) for ax in panels] == [0, 1, 1, 1]


def test_clip_images_come_from_the_feature_pipeline(tone):
    fig = clip_figure(tone, SR)
    _, ax_spec, ax_mel, ax_mfcc = fig.axes[:4]
    x = torch.from_numpy(tone)[None]
    for ax, kind in ((ax_spec, "spectrogram"), (ax_mel, "mel"), (ax_mfcc, "mfcc")):
        cfg = FeatureConfig(kind=kind, normalize=False)
        expected = FeatureExtractor(cfg).power_db(x)[0].numpy()
        np.testing.assert_allclose(panel_image(ax), expected, rtol=1e-5, atol=1e-4)
    # frame i sits at i * hop / sr seconds; the 440 Hz tone is the loudest spectrogram row
    cfg = FeatureConfig()
    frames = cfg.frames(SR)
    left, right, bottom, top = ax_spec.get_images()[0].get_extent()
    assert (left + right) / 2 == pytest.approx((frames - 1) / 2 * cfg.hop_length / SR)
    assert right - left == pytest.approx(frames * cfg.hop_length / SR)
    bin_hz = SR / cfg.n_fft
    assert (bottom, top) == pytest.approx((-bin_hz / 2, SR / 2 + bin_hz / 2))
    peak_row = int(panel_image(ax_spec).mean(axis=1).argmax())
    assert abs(peak_row * bin_hz - 440) <= bin_hz


def test_clip_figure_follows_base_config_and_sample_rate(tone):
    base = FeatureConfig(kind="mfcc", n_mels=32, n_mfcc=13, deltas=True, normalize=True, hop_length=160)
    fig = clip_figure(tone[::2].copy(), 8000, base=base)
    _, ax_spec, ax_mel, ax_mfcc = fig.axes[:4]
    assert panel_image(ax_mel).shape == (32, 1 + 8000 // 160)
    assert panel_image(ax_mfcc).shape == (13, 1 + 8000 // 160)
    # the wave's own rate sets the frequency axis (Nyquist 4 kHz), not base.sample_rate
    assert ax_spec.get_images()[0].get_extent()[3] == pytest.approx(4000 + 8000 / base.n_fft / 2)
    expected = FeatureExtractor(dataclasses.replace(base, kind="mel", sample_rate=8000, normalize=False,
                                                    deltas=False)).power_db(torch.from_numpy(tone[::2].copy())[None])
    np.testing.assert_allclose(panel_image(ax_mel), expected[0].numpy(), rtol=1e-5, atol=1e-4)


def test_clip_figure_rejects_bad_waves(tone):
    with pytest.raises(ValueError, match="mono"):
        clip_figure(np.stack([tone, tone]), SR)
    with pytest.raises(ValueError, match="mono"):
        clip_figure(np.zeros(0, dtype=np.float32), SR)


def test_plot_clip_writes_png(tone, tmp_path):
    out = plot_clip(tone, SR, tmp_path / "deep" / "dir" / "clip.png", title="440 Hz")
    assert out == tmp_path / "deep" / "dir" / "clip.png"
    w, h = png_size(out)
    assert 1100 <= w <= 1300 and 1100 <= h <= 1300


# --------------------------------------------------------------------------- training


def rows(n: int = 5, validation: bool = True) -> list[dict]:
    out = []
    for e in range(1, n + 1):
        out.append({
            "epoch": e, "train_loss": 2.0 / e, "train_acc": 0.1 * e, "lr": 1e-3 * 0.5 ** e,
            "val_loss": 2.2 / e if validation else None,
            "val_acc": 0.09 * e if validation else math.nan,
            "val_ua": (0.3, 0.5, 0.4, 0.45, 0.42)[e - 1] if validation else None,
        })
    return out


def test_training_figure_panels_and_series():
    fig = training_figure(rows())
    ax_loss, ax_acc, ax_lr = fig.axes
    assert (ax_loss.get_ylabel(), ax_acc.get_ylabel(), ax_lr.get_ylabel()) == ("loss", "accuracy", "learning rate")
    assert ax_lr.get_xlabel() == "epoch"
    assert [l.get_label() for l in ax_loss.get_lines()] == ["train", "validation"]
    labels = [l.get_label() for l in ax_acc.get_lines()]
    assert labels[:3] == ["train accuracy", "validation WA", "validation UA"]
    assert labels[3].startswith("best UA 0.500 (epoch 2)")
    (lr_line,) = ax_lr.get_lines()
    np.testing.assert_allclose(lr_line.get_xdata(), [1, 2, 3, 4, 5])
    assert ax_lr.get_yscale() == "log"  # lr spans more than a decade


def test_training_figure_without_validation_and_with_lr_trace():
    trace = list(np.linspace(1e-3, 0.0, 20))  # 4 steps per epoch, decaying to zero
    fig = training_figure(rows(5, validation=False), lr_trace=trace)
    ax_loss, ax_acc, ax_lr = fig.axes
    assert [l.get_label() for l in ax_loss.get_lines()] == ["train"]
    assert [l.get_label() for l in ax_acc.get_lines()] == ["train accuracy"]
    (line,) = ax_lr.get_lines()
    x = np.asarray(line.get_xdata())
    assert x.size == 20 and x[0] == pytest.approx(0.25) and x[-1] == pytest.approx(5.0)
    assert ax_lr.get_yscale() == "linear"  # zero in the trace: no log axis
    # a cosine tail of float round-off (1e-35) must not stretch a log axis over 30 decades
    tiny = training_figure(rows(2), lr_trace=[1e-3, 5e-4, 1e-6, 1e-35])
    assert tiny.axes[2].get_yscale() == "linear"


def test_plot_training_writes_png(tmp_path):
    w, h = png_size(plot_training(rows(1), tmp_path / "training.png"))
    assert 900 <= w <= 1000 and 1050 <= h <= 1150
    with pytest.raises(ValueError):
        plot_training([], tmp_path / "empty.png")


# --------------------------------------------------------------------------- confusion


def cell_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_confusion_figure_cells_and_axes():
    m = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    fig = confusion_figure(m, ["a", "b", "c"], title="fold 1")
    ax = fig.axes[0]
    assert (ax.get_ylabel(), ax.get_xlabel(), ax.get_title()) == ("true", "predicted", "fold 1")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    texts = cell_texts(fig)
    assert len(texts) == 9
    assert texts[0] == "80%\n(8)" and texts[1] == "20%\n(2)" and texts[3] == "10%\n(1)"
    assert texts[6:] == ["–"] * 3  # a class never seen in the true labels
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "% of true class"
    np.testing.assert_allclose(panel_image(ax)[0], [80, 20, 0])


def test_confusion_figure_counts_and_validation():
    fig = confusion_figure(np.array([[3, 1], [0, 4]]), ["x", "y"], normalize=False)
    assert cell_texts(fig) == ["3", "1", "0", "4"]
    assert fig.axes[1].get_ylabel() == "count"
    with pytest.raises(ValueError, match="square"):
        confusion_figure(np.ones((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        confusion_figure(np.ones((2, 2)), ["a", "b", "c"])


def test_plot_confusion_writes_png(tmp_path):
    m = np.random.default_rng(1).integers(0, 20, size=(len(EMOTIONS), len(EMOTIONS)))
    w, h = png_size(plot_confusion(m, EMOTIONS, tmp_path / "cm.png", title="test"))
    assert 950 <= w <= 1100 and 800 <= h <= 950


# --------------------------------------------------------------------------- LR finder


def sweep():
    lrs = np.logspace(-6, 0, 60)
    loss = 2.0 - 0.5 * np.tanh((np.log10(lrs) + 3.5)) + np.where(lrs > 0.1, 50 * lrs, 0.0)
    loss[-1] = np.inf  # diverged
    noisy = loss + 0.05 * np.random.default_rng(2).standard_normal(lrs.size)
    return lrs, noisy, loss


def test_lr_find_figure_lines_and_legend():
    lrs, noisy, smooth = sweep()
    fig = lr_find_figure(lrs, noisy, lower=1e-4, upper=3e-3, smoothed=smooth)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning rate", "loss")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["loss", "smoothed loss", "lower 1.00e-04", "upper 3.00e-03"]
    raw, bold, vlow, vhigh = ax.get_lines()
    assert raw.get_alpha() < 1 and bold.get_linewidth() > raw.get_linewidth()
    assert vlow.get_xdata()[0] == pytest.approx(1e-4) and vhigh.get_xdata()[0] == pytest.approx(3e-3)
    # the explosion at the end does not squash the descent
    bottom, top = ax.get_ylim()
    assert math.isfinite(top) and top < 5 and bottom < 1.6


def test_lr_find_without_smoothing_and_bad_input(tmp_path):
    lrs, noisy, _ = sweep()
    fig = lr_find_figure(lrs, noisy, lower=1e-5, upper=1e-3)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == \
        ["loss", "lower 1.00e-05", "upper 1.00e-03"]
    with pytest.raises(ValueError, match="positive"):
        lr_find_figure([0.0, 1e-3], [1.0, 1.0], lower=1e-4, upper=1e-3)
    with pytest.raises(ValueError, match="length"):
        lr_find_figure([1e-4, 1e-3], [1.0], lower=1e-4, upper=1e-3)


def test_plot_lr_find_writes_png(tmp_path):
    lrs, noisy, smooth = sweep()
    w, h = png_size(plot_lr_find(lrs, noisy, tmp_path / "lr.png", lower=1e-4, upper=3e-3, smoothed=smooth))
    assert (w, h) == (960, 600)
