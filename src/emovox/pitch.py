"""Fundamental frequency (F0) per feature frame, in tensor ops: YIN's cumulative mean normalised
difference (de Cheveigné & Kawahara 2002, JASA 111(4)) on the frames the feature images use.

Why here and not librosa: it runs batched inside the one pipeline, so training, prediction,
the server and the exported ONNX graph share it (``librosa.pyin`` is ~100x slower and cannot be
exported). Pitch is the cue that carries across voices once a speaker's own level is removed
(what made eGeMAPS + SVM jump from 30 to 58 % on SAVEE speaker-adaptively, docs/generalisation.md).

Each frame gets two numbers: F0 in semitones above 55 Hz and its aperiodicity, the depth of the
chosen dip of the normalised difference (0: perfectly periodic; unvoiced frames are near 1).
The autocorrelation comes from the power spectrum by one fixed cosine matrix (Wiener–Khinchin),
divided by the window's own autocorrelation so long lags are not penalised.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: semitones are counted from this frequency (A1)
REFERENCE_HZ = 55.0
#: frames whose aperiodicity is below this count as voiced in the pitch statistics
VOICED_APERIODICITY = 0.25


class PitchTracker(nn.Module):
    """Waveforms ``[batch, samples]`` → ``[batch, 2, frames]``: F0 in semitones above
    :data:`REFERENCE_HZ` and aperiodicity, on centred frames ``hop_length`` apart (the feature
    images' frames: ``1 + samples // hop_length`` of them).

    Parameters
    ----------
    sample_rate, hop_length : the feature images' rate and hop.
    f_min, f_max : the F0 search range in Hz (60-500 covers adult speech, shouting included).
    window_seconds : analysis window; it must hold two periods of ``f_min``.
    threshold : YIN's absolute threshold: the first dip below it is the period.
    """

    def __init__(self, sample_rate: int = 16_000, hop_length: int = 256, f_min: float = 60.0, f_max: float = 500.0,
                 window_seconds: float = 0.064, threshold: float = 0.15) -> None:
        super().__init__()
        win = int(round(window_seconds * sample_rate))
        if win * f_min < 2 * sample_rate:
            raise ValueError(f"a {window_seconds} s window holds fewer than two periods of {f_min} Hz")
        self.sample_rate, self.hop_length, self.win_length = sample_rate, hop_length, win
        self.n_fft = 1 << (2 * win - 1).bit_length()  # zero-padded: linear, not circular, autocorrelation
        self.lag_lo, self.lag_hi = int(sample_rate // f_max), int(math.ceil(sample_rate / f_min))
        self.threshold = threshold
        window = np.hanning(win + 1)[:-1]  # periodic Hann, as torch.hann_window
        k = np.arange(self.n_fft // 2 + 1)
        tau = np.arange(self.lag_hi + 2)
        weight = np.where((k == 0) | (k == self.n_fft // 2), 1.0, 2.0)  # one-sided spectrum
        cos = weight[None, :] * np.cos(2 * np.pi * np.outer(tau, k) / self.n_fft) / self.n_fft  # [lags, freqs]
        padded = np.zeros(self.n_fft)
        padded[:win] = window
        own = np.fft.irfft(np.abs(np.fft.rfft(padded)) ** 2, self.n_fft)[: len(tau)]
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32), persistent=False)
        self.register_buffer("cos", torch.tensor(cos / np.maximum(own, 1e-3)[:, None], dtype=torch.float32),
                             persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [batch, freqs, frames]
        r = torch.matmul(self.cos, power)  # unbiased autocorrelation [batch, lags, frames], lag 0 first
        diff = 2.0 * (r[:, :1] - r[:, 1:])  # YIN's difference function, lags 1..
        mean = torch.cumsum(diff, dim=1) / torch.arange(1, diff.shape[1] + 1, dtype=diff.dtype,
                                                         device=diff.device)[None, :, None]
        cmnd = diff / mean.clamp_min(1e-10)
        band = cmnd[:, self.lag_lo - 1:self.lag_hi]  # lags lag_lo..lag_hi
        below = band < self.threshold
        # the first lag under the threshold (argmax returns the first maximum), else the deepest
        start = torch.where(below.any(1), below.to(band.dtype).argmax(1), band.argmin(1))
        # then down to the bottom of that dip (within 8 lags: a quarter period at 500 Hz)
        near = (start.unsqueeze(1) + torch.arange(8, device=band.device)[None, :, None]).clamp(max=band.shape[1] - 1)
        values = band.gather(1, near)
        best = start + values.argmin(1)
        aperiodicity = values.amin(1)
        # parabolic interpolation between the neighbouring lags
        y0 = band.gather(1, (best - 1).clamp(min=0).unsqueeze(1))[:, 0]
        y1 = band.gather(1, best.unsqueeze(1))[:, 0]
        y2 = band.gather(1, (best + 1).clamp(max=band.shape[1] - 1).unsqueeze(1))[:, 0]
        curve = y0 - 2.0 * y1 + y2
        shift = torch.where(curve.abs() > 1e-8, 0.5 * (y0 - y2) / torch.where(curve.abs() > 1e-8, curve, 1.0),
                            torch.zeros_like(curve)).clamp(-1.0, 1.0)
        lag = best.to(band.dtype) + self.lag_lo + shift
        semitones = 12.0 * torch.log2(self.sample_rate / lag / REFERENCE_HZ)
        return torch.stack([semitones, aperiodicity.clamp(0.0, 2.0)], dim=1)
