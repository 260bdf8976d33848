"""Every figure the CLI writes, as PNG files.

Each ``plot_*`` function builds its figure with the matching ``*_figure`` helper, saves it
to ``out`` (creating parent directories) and returns the path. Figures are plain
:class:`matplotlib.figure.Figure` objects drawn with the Agg canvas, so nothing here
touches pyplot's global state or needs a display. The ``*_figure`` helpers are public so
tests (and notebooks) can inspect the axes before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, ScalarFormatter

from emovox.features import FeatureConfig, FeatureExtractor
from emovox.labels import EMOTION_COLORS
from emovox.safeio import atomic_path

__all__ = [
    "clip_figure", "plot_clip",
    "training_figure", "plot_training",
    "confusion_figure", "plot_confusion",
    "lr_find_figure", "plot_lr_find",
    "timeline_figure", "plot_timeline",
    "explanation_figure", "plot_explanation",
]

DPI = 120
#: Frequencies (Hz) marked on the right-hand axis of the mel panel, where in range.
MEL_HZ_TICKS = (250, 500, 1000, 2000, 4000, 8000, 16000)
#: Above this many samples the waveform panel draws a min/max envelope instead of every sample.
ENVELOPE_ABOVE = 200_000


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``out`` and release it."""
    out = Path(out)
    with atomic_path(out) as tmp:  # a kill mid-write leaves the previous figure, never half of one
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return out


def _floats(values) -> np.ndarray:
    """Sequence with possible ``None`` entries → float array with NaN for missing/non-finite."""
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    arr[~np.isfinite(arr)] = np.nan
    return arr


# --------------------------------------------------------------------------- clip


def _clip_images(wave: np.ndarray, config: FeatureConfig) -> dict[str, np.ndarray]:
    """The three un-normalised images ``{kind: [bins, frames]}`` from the one feature pipeline."""
    x = torch.from_numpy(wave)[None]
    images = {}
    with torch.no_grad():
        for kind in ("spectrogram", "mel", "mfcc"):
            cfg = dataclasses.replace(config, kind=kind, normalize=False, deltas=False)
            images[kind] = FeatureExtractor(cfg).power_db(x)[0].numpy()
    return images


def _mel_band_hz(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Band index → centre frequency table, including the outer edges at index -1 and n_mels."""
    import librosa

    f_max = config.f_max if config.f_max is not None else config.sample_rate / 2
    hz = librosa.mel_frequencies(config.n_mels + 2, fmin=config.f_min, fmax=f_max, htk=False)
    return np.arange(-1, config.n_mels + 1, dtype=float), hz


def clip_figure(wave: np.ndarray, sample_rate: int, *, title: str | None = None,
                base: FeatureConfig | None = None) -> Figure:
    """Waveform, spectrogram, mel-spectrogram and MFCC of one clip, on a shared time axis.

    Parameters
    ----------
    wave : mono waveform ``[samples]``.
    sample_rate : rate of ``wave`` in Hz; it replaces ``base.sample_rate`` so the axes are true.
    title : figure title.
    base : feature settings (STFT, mel, MFCC, ``top_db``); default :class:`FeatureConfig`.
        ``kind``, ``normalize`` and ``deltas`` are ignored: each panel shows the dB image
        of :meth:`FeatureExtractor.power_db`.

    Returns
    -------
    Figure with the four panels first in ``fig.axes`` (top to bottom), then the three
    colour bars.
    """
    wave = np.ascontiguousarray(np.asarray(wave, dtype=np.float32))
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty mono waveform [samples], got shape {wave.shape}")
    config = dataclasses.replace(base or FeatureConfig(), sample_rate=int(sample_rate))
    images = _clip_images(wave, config)
    sr, hop = config.sample_rate, config.hop_length
    duration = wave.size / sr
    frames = images["mel"].shape[1]
    # frame i is centred at i * hop / sr seconds
    t0, t1 = -0.5 * hop / sr, (frames - 0.5) * hop / sr

    fig = _new_figure(10, 10)
    grid = fig.add_gridspec(4, 2, width_ratios=(1, 0.025), height_ratios=(0.7, 1, 1, 1))
    ax_wave = fig.add_subplot(grid[0, 0])
    ax_spec = fig.add_subplot(grid[1, 0], sharex=ax_wave)
    ax_mel = fig.add_subplot(grid[2, 0], sharex=ax_wave)
    ax_mfcc = fig.add_subplot(grid[3, 0], sharex=ax_wave)
    cax_spec, cax_mel, cax_mfcc = (fig.add_subplot(grid[i, 1]) for i in (1, 2, 3))

    # waveform
    t = np.arange(wave.size) / sr
    if wave.size > ENVELOPE_ABOVE:
        n = wave.size // 4000
        chunks = wave[: n * 4000].reshape(4000, n)
        tc = t[: n * 4000].reshape(4000, n)[:, 0]
        ax_wave.fill_between(tc, chunks.min(1), chunks.max(1), color="C0", lw=0.5)
    else:
        ax_wave.plot(t, wave, color="C0", lw=0.5)
    peak = float(np.abs(wave).max()) or 1.0
    ax_wave.set_ylim(-1.05 * peak, 1.05 * peak)
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_title("waveform", loc="left", fontsize=10)
    ax_wave.grid(alpha=0.3)

    common = dict(origin="lower", aspect="auto", interpolation="nearest")

    # linear spectrogram: bin k centred at k * sr / n_fft Hz
    spec = images["spectrogram"]
    df = sr / config.n_fft
    im = ax_spec.imshow(spec, extent=(t0, t1, -df / 2, (spec.shape[0] - 0.5) * df), cmap="magma", **common)
    ax_spec.set_ylabel("frequency (Hz)")
    ax_spec.set_title(f"spectrogram (n_fft {config.n_fft}, hop {hop})", loc="left", fontsize=10)
    fig.colorbar(im, cax=cax_spec).set_label("dB")

    # mel-spectrogram: band index on the left, centre frequency on the right
    mel = images["mel"]
    im = ax_mel.imshow(mel, extent=(t0, t1, -0.5, mel.shape[0] - 0.5), cmap="magma", **common)
    ax_mel.set_ylabel("mel band")
    ax_mel.yaxis.set_major_locator(MaxNLocator(integer=True))
    bands, hz = _mel_band_hz(config)
    right = ax_mel.secondary_yaxis(
        "right", functions=(lambda b: np.interp(b, bands, hz), lambda f: np.interp(f, hz, bands)))
    right.yaxis.set_major_locator(FixedLocator([f for f in MEL_HZ_TICKS if hz[0] <= f <= hz[-1]]))
    right.set_ylabel("centre (Hz)")
    ax_mel.set_title(f"mel-spectrogram ({config.n_mels} bands)", loc="left", fontsize=10)
    fig.colorbar(im, cax=cax_mel).set_label("dB")

    # MFCC: c0 (overall level) dwarfs the rest, so the colour scale is set by c1.. and c0 saturates
    mfcc = images["mfcc"]
    rest = mfcc[1:] if mfcc.shape[0] > 1 else mfcc
    lim = float(np.percentile(np.abs(rest), 99)) or 1.0
    im = ax_mfcc.imshow(mfcc, extent=(t0, t1, -0.5, mfcc.shape[0] - 0.5), cmap="coolwarm",
                        vmin=-lim, vmax=lim, **common)
    ax_mfcc.set_ylabel("coefficient")
    ax_mfcc.yaxis.set_major_locator(MaxNLocator(integer=True))
    note = "; colour scale from c1 on, c0 saturates" if mfcc.shape[0] > 1 else ""
    ax_mfcc.set_title(f"MFCC ({mfcc.shape[0]} coefficients{note})", loc="left", fontsize=10)
    fig.colorbar(im, cax=cax_mfcc, extend="both").set_label("value")

    for ax in (ax_wave, ax_spec, ax_mel):
        ax.tick_params(labelbottom=False)
    ax_mfcc.set_xlabel("time (s)")
    ax_wave.set_xlim(0.0, duration)
    if title:
        fig.suptitle(title)
    return fig


def plot_clip(wave: np.ndarray, sample_rate: int, out: str | os.PathLike, *, title: str | None = None,
              base: FeatureConfig | None = None) -> Path:
    """Save :func:`clip_figure` (about 1200 x 1200 px) to ``out``; return the path."""
    return _save(clip_figure(wave, sample_rate, title=title, base=base), out)


# --------------------------------------------------------------------------- training


def training_figure(rows: list[dict], *, lr_trace: Sequence[float] | None = None) -> Figure:
    """Loss, accuracy and learning rate per epoch.

    Parameters
    ----------
    rows : one dict per epoch with ``epoch`` (completed epochs, counted from 1),
        ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc`` (WA), ``val_ua`` and ``lr``
        (at epoch end). Missing, ``None`` or NaN values are skipped; a series with no
        values is left out.
    lr_trace : learning rate after every optimisation step. When given it replaces the
        per-epoch ``lr``; step ``j`` of ``n`` is drawn at fractional epoch
        ``first - 1 + (j + 1) * n_epochs / n``, assuming equal steps per epoch.

    Returns
    -------
    Figure with three axes: loss, accuracy, learning rate.
    """
    if not rows:
        raise ValueError("no epochs to plot")
    rows = sorted(rows, key=lambda r: r["epoch"])
    epoch = _floats(r["epoch"] for r in rows)
    col = {k: _floats(r.get(k) for r in rows)
           for k in ("train_loss", "val_loss", "train_acc", "val_acc", "val_ua", "lr")}

    fig = _new_figure(8, 9)
    ax_loss, ax_acc, ax_lr = fig.subplots(3, 1, sharex=True)
    style = dict(marker="o", ms=3, lw=1.5)

    def series(ax, key, label, color):
        if np.isfinite(col[key]).any():
            ax.plot(epoch, col[key], label=label, color=color, **style)

    series(ax_loss, "train_loss", "train", "C0")
    series(ax_loss, "val_loss", "validation", "C1")
    ax_loss.set_ylabel("loss")

    series(ax_acc, "train_acc", "train accuracy", "C0")
    series(ax_acc, "val_acc", "validation WA", "C1")
    series(ax_acc, "val_ua", "validation UA", "C2")
    if np.isfinite(col["val_ua"]).any():
        best = int(np.nanargmax(col["val_ua"]))
        ax_acc.plot(epoch[best], col["val_ua"][best], "*", color="C2", ms=12,
                    label=f"best UA {col['val_ua'][best]:.3f} (epoch {epoch[best]:g})")
    ax_acc.set_ylabel("accuracy")

    if lr_trace is not None and len(lr_trace):
        lr = _floats(lr_trace)
        span = len(rows)
        x = epoch[0] - 1 + np.arange(1, lr.size + 1) * span / lr.size
        ax_lr.plot(x, lr, color="C3", lw=1.2, label="per step")
    else:
        x, lr = epoch, col["lr"]
        if np.isfinite(lr).any():
            ax_lr.plot(x, lr, color="C3", label="at epoch end", **style)
    finite = lr[np.isfinite(lr)]
    # log only for multi-decade decay; a schedule annealed to ~0 reads better on a linear axis
    if finite.size and finite.min() > 0 and 10 < finite.max() / finite.min() <= 1e5:
        ax_lr.set_yscale("log")
    else:
        fmt = ScalarFormatter(useMathText=True)
        fmt.set_powerlimits((-2, 3))
        ax_lr.yaxis.set_major_formatter(fmt)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))

    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9)
    return fig


def plot_training(rows: list[dict], out: str | os.PathLike, *,
                  lr_trace: Sequence[float] | None = None) -> Path:
    """Save :func:`training_figure` to ``out``; return the path."""
    return _save(training_figure(rows, lr_trace=lr_trace), out)


# --------------------------------------------------------------------------- confusion


def _count(v: float) -> str:
    return f"{int(round(v))}" if float(v).is_integer() else f"{v:.1f}"


def confusion_figure(matrix: np.ndarray, labels: Sequence[str], *, title: str | None = None,
                     normalize: bool = True) -> Figure:
    """Confusion matrix, rows true and columns predicted.

    Parameters
    ----------
    matrix : counts ``[n, n]``; ``matrix[i, j]`` clips of class ``i`` predicted as ``j``.
    labels : the ``n`` class names.
    title : figure title.
    normalize : colour by row percentage and write ``"pct%\\n(count)"`` in each cell;
        otherwise colour by count and write the count. Empty rows show ``"–"``.

    Returns
    -------
    Figure whose first axes is the matrix and second the colour bar.
    """
    m = np.asarray(matrix, dtype=float)
    labels = [str(x) for x in labels]
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    if len(labels) != m.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {m.shape[0]}x{m.shape[0]} matrix")
    n = m.shape[0]
    totals = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(totals > 0, 100.0 * m / totals, np.nan)
    shown = pct if normalize else m
    vmax = 100.0 if normalize else max(float(m.max()), 1.0)

    side = float(np.clip(1.2 + 0.75 * n, 4.0, 16.0))
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(shown), cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8).set_label("% of true class" if normalize else "count")

    fontsize = 9 if n <= 10 else max(5, 9 - (n - 10) // 3)
    for i in range(n):
        for j in range(n):
            if normalize:
                text = "–" if np.isnan(pct[i, j]) else f"{pct[i, j]:.0f}%\n({_count(m[i, j])})"
            else:
                text = _count(m[i, j])
            dark = np.nan_to_num(shown[i, j]) > 0.55 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")

    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return fig


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], out: str | os.PathLike, *,
                   title: str | None = None, normalize: bool = True) -> Path:
    """Save :func:`confusion_figure` to ``out``; return the path."""
    return _save(confusion_figure(matrix, labels, title=title, normalize=normalize), out)


# --------------------------------------------------------------------------- LR finder


def _fmt_lr(x: float) -> str:
    return f"{x:.2e}"


def lr_find_figure(lrs: Sequence[float], losses: Sequence[float], *, lower: float, upper: float,
                   smoothed: Sequence[float] | None = None) -> Figure:
    """Loss against learning rate from a range test, with the suggested bounds.

    Parameters
    ----------
    lrs : learning rates tried (positive), one per step.
    losses : raw loss at each step; non-finite values (divergence) are not drawn.
    lower, upper : suggested learning-rate range, drawn as vertical lines.
    smoothed : smoothed loss at each step, drawn bold over the faint raw curve.

    Returns
    -------
    Figure with one axes (log-scaled x).
    """
    x = _floats(lrs)
    raw = _floats(losses)
    if x.size != raw.size or (smoothed is not None and len(smoothed) != x.size):
        raise ValueError("lrs, losses (and smoothed) must have the same length")
    if x.size == 0 or not (np.nan_to_num(x, nan=-1.0) > 0).all():
        raise ValueError("learning rates must be positive and finite")
    smooth = None if smoothed is None else _floats(smoothed)

    fig = _new_figure(8, 5)
    ax = fig.add_subplot()
    ax.plot(x, raw, color="C0", lw=1, alpha=0.35 if smooth is not None else 1.0, label="loss")
    if smooth is not None:
        ax.plot(x, smooth, color="C0", lw=2.2, label="smoothed loss")
    ax.axvspan(lower, upper, color="C2", alpha=0.08)
    ax.axvline(lower, color="C2", ls="--", lw=1.5, label=f"lower {_fmt_lr(lower)}")
    ax.axvline(upper, color="C3", ls="--", lw=1.5, label=f"upper {_fmt_lr(upper)}")
    ax.set_xscale("log")

    # keep the descent readable when the loss explodes at the end of the sweep
    ref = smooth if smooth is not None and np.isfinite(smooth).any() else raw
    ref = ref[np.isfinite(ref)]
    if ref.size:
        start, low = float(ref[0]), float(ref.min())
        span = max(start - low, 1e-3 * abs(start), 1e-8)
        plotted = np.concatenate([v[np.isfinite(v)] for v in (raw, smooth) if v is not None])
        top = min(start + span, float(plotted.max())) + 0.05 * span
        bottom = min(low, float(plotted.min()) if math.isfinite(plotted.min()) else low) - 0.05 * span
        ax.set_ylim(bottom, top)

    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return fig


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], out: str | os.PathLike, *, lower: float,
                 upper: float, smoothed: Sequence[float] | None = None) -> Path:
    """Save :func:`lr_find_figure` to ``out``; return the path."""
    return _save(lr_find_figure(lrs, losses, lower=lower, upper=upper, smoothed=smoothed), out)


def _emotion_color(label: str, i: int) -> str:
    import matplotlib

    return EMOTION_COLORS.get(label, matplotlib.colormaps["tab10"](i % 10))


def timeline_figure(timeline, *, title: str | None = None) -> Figure:
    """Waveform with coloured emotion segments on top; per-emotion probability curves below."""
    fig = _new_figure(12, 5.5)
    wave_ax, prob_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.3])
    env = timeline.envelope
    t = (np.arange(len(env)) + 0.5) / 100 if len(env) else np.zeros(0)
    colors = {lab: _emotion_color(lab, i) for i, lab in enumerate(timeline.labels)}
    for seg in timeline.segments:
        if seg.label != "silence":
            wave_ax.axvspan(seg.start, seg.end, color=colors.get(seg.label, EMOTION_COLORS["uncertain"]),
                            alpha=0.45, lw=0)
    if len(env):
        wave_ax.fill_between(t, env[:, 0], env[:, 1], color="#37474f", lw=0.3)
        peak = float(np.abs(env).max()) or 1.0
        wave_ax.set_ylim(-1.05 * peak, 1.05 * peak)
    wave_ax.set_ylabel("waveform")
    wave_ax.set_yticks([])
    seen = [lab for lab in timeline.labels if any(s.label == lab for s in timeline.segments)]
    handles = [wave_ax.axvspan(0, 0, color=colors[lab], alpha=0.45, label=lab) for lab in seen]
    if handles:
        wave_ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    mid = (timeline.starts + timeline.ends) / 2
    for i, lab in enumerate(timeline.labels):
        prob_ax.plot(mid, timeline.probabilities[:, i], color=colors[lab], lw=1.6, label=lab, marker=".", ms=3)
    prob_ax.set_ylim(0, 1)
    prob_ax.set_ylabel("probability")
    prob_ax.set_xlabel("time (s)")
    prob_ax.set_xlim(0, max(timeline.duration, 1e-3))
    prob_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    prob_ax.grid(alpha=0.3)
    wave_ax.set_title(title or (Path(timeline.source).name if timeline.source else "emotion timeline"))
    return fig


def plot_timeline(timeline, out: str | os.PathLike, *, title: str | None = None) -> Path:
    return _save(timeline_figure(timeline, title=title), out)


def explanation_figure(expl, *, title: str | None = None) -> Figure:
    """One row per ensemble member: the feature image it saw, then the same image with its
    Grad-CAM map over it; the clip's probabilities beside them."""
    rows = len(expl.maps)
    fig = _new_figure(13, 1.0 + 2.6 * rows)
    grid = fig.add_gridspec(rows, 3, width_ratios=(1, 1, 0.3))
    for r, m in enumerate(expl.maps):
        ax_img = fig.add_subplot(grid[r, 0])
        ax_cam = fig.add_subplot(grid[r, 1], sharex=ax_img, sharey=ax_img)
        frames = m.image.shape[1]
        extent = (-0.5 * m.hop_seconds, (frames - 0.5) * m.hop_seconds, -0.5, m.image.shape[0] - 0.5)
        what = {"mel": "mel band", "spectrogram": "frequency bin", "mfcc": "MFCC"}.get(m.kind, "bin")
        ax_img.imshow(m.image, origin="lower", aspect="auto", extent=extent, cmap="magma")
        ax_img.set_ylabel(what)
        ax_img.set_title(f"{m.name} image")
        ax_cam.imshow(m.image, origin="lower", aspect="auto", extent=extent, cmap="gray")
        ax_cam.imshow(np.ma.masked_less(m.heat, 0.05), origin="lower", aspect="auto", extent=extent,
                      cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax_cam.contour(np.linspace(extent[0], extent[1], frames), np.arange(m.heat.shape[0]), m.heat,
                       levels=[0.5], colors="white", linewidths=0.8)
        for f in m.voiced:
            ax_cam.axvline(f * m.hop_seconds, color="cyan", ls="--", lw=0.8)
        ax_cam.set_title(f"Grad-CAM (stage {expl.stage}): what drove '{expl.label}' (dashed: voiced part)")
        if r == rows - 1:
            ax_img.set_xlabel("time (s)")
            ax_cam.set_xlabel("time (s)")
    ax_p = fig.add_subplot(grid[:, 2])
    labels = list(expl.probabilities)
    values = [expl.probabilities[k] for k in labels]
    colors = [_emotion_color(k, i) for i, k in enumerate(labels)]
    ax_p.barh(labels[::-1], values[::-1], color=colors[::-1], edgecolor="#455a64")
    ax_p.set_xlim(0, 1)
    ax_p.set_xlabel("probability")
    if title:
        fig.suptitle(title)
    return fig


def plot_explanation(expl, out: str | os.PathLike, *, title: str | None = None) -> Path:
    return _save(explanation_figure(expl, title=title), out)
