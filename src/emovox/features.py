"""Spectrogram, mel-spectrogram and MFCC images: the one place preprocessing lives.

Training, evaluation, the CLI, the Recognizer and the ONNX export all call this module, so a
model always sees the features it was trained on. Each transform has a functional form
(:func:`extract`) and a module form (:class:`FeatureExtractor`); both take a batch of
waveforms ``[batch, samples]`` at ``config.sample_rate`` and return images
``[batch, channels, bins, frames]``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .pitch import PitchTracker

KINDS = ("spectrogram", "mel", "mfcc")
NORMALIZE_MODES = ("window", "bins", "none")


@dataclass(frozen=True)
class FeatureConfig:
    """Every setting that changes a feature image (and so its cache key).

    Parameters
    ----------
    kind : ``"spectrogram"`` (linear power), ``"mel"`` or ``"mfcc"``.
    sample_rate : working rate of the input waveform.
    n_fft, win_length, hop_length : STFT settings in samples (Hann window, centred frames).
    n_mels : mel bands (for ``mel`` and as the basis of ``mfcc``).
    n_mfcc : cepstral coefficients kept.
    f_min, f_max : mel band edges in Hz (``f_max=None``: Nyquist).
    top_db : floor of each image, this many dB below its maximum (librosa's ``top_db``).
    deltas : stack first and second time derivatives as extra channels.
    normalize : how each model window is standardised (gain invariance):
        ``"window"`` (or ``True``): one mean and one standard deviation per window;
        ``"bins"``: each frequency bin minus its mean over a reference, divided by one
        standard deviation of the reference — the reference being the clip's voiced frames
        (per clip) or all of a speaker's clips (speaker-adaptive, see :class:`Stats`). It removes
        a microphone's or a room's fixed colouring and the speaker's timbre;
        ``"none"`` (or ``False``): the dB values as they are.
    remove_dc : subtract each waveform's mean before the STFT: a recording's DC offset (SAVEE's
        files carry one of about 0.03) otherwise fills the lowest bins and shifts silence trimming.
    relative_db : express the image in dB below its loudest bin before the DCT. Without it an
        MFCC image's c0 carries the recording level, which the per-window standardisation does
        not remove (it moves one coefficient, not the whole image): a quieter microphone
        changes the answer. Mel and spectrogram images are gain-invariant either way.
    append_mfcc : ``kind: mel`` only: append the ``n_mfcc`` cepstral rows of the same mel image
        below its bands (the functionals model summarises both: the bands' spreads and quantiles
        and the cepstrum's are different statistics of one spectrum).
    pitch : append two rows to the dB image, F0 in semitones above 55 Hz and its aperiodicity
        per frame (:class:`emovox.pitch.PitchTracker`); for the utterance-functionals model,
        which summarises them over the voiced frames (networks take spectral images only).
    """

    kind: str = "mel"
    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 256
    n_mels: int = 64
    n_mfcc: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float = 80.0
    deltas: bool = False
    normalize: str = "window"
    remove_dc: bool = False
    relative_db: bool = False
    append_mfcc: bool = False
    pitch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.normalize, bool):  # model folders written before the modes existed
            object.__setattr__(self, "normalize", "window" if self.normalize else "none")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"unknown normalize {self.normalize!r}; expected one of {', '.join(NORMALIZE_MODES)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown feature kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if self.append_mfcc and self.kind != "mel":
            raise ValueError(f"append_mfcc adds cepstral rows to a mel image; kind is {self.kind!r}")
        if self.kind in ("mfcc",) + (("mel",) if self.append_mfcc else ()) and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")

    @property
    def channels(self) -> int:
        """Image channels: 1, or 3 with deltas."""
        return 3 if self.deltas else 1

    @property
    def bins(self) -> int:
        """Height of the image (the two pitch rows included)."""
        return self.spectral_bins + (2 if self.pitch else 0)

    @property
    def spectral_bins(self) -> int:
        """Rows of the spectral part of the image: frequency bins, mel bands or coefficients."""
        rows = {"spectrogram": self.n_fft // 2 + 1, "mel": self.n_mels, "mfcc": self.n_mfcc}[self.kind]
        return rows + (self.n_mfcc if self.append_mfcc else 0)

    def frames(self, n_samples: int) -> int:
        """Width of the image for ``n_samples`` of audio (centred frames)."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown feature settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    def key(self) -> str:
        """Short stable hash of the settings, for cache file names."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Slaney mel filters ``[n_mels, n_fft // 2 + 1]``, exactly librosa's."""
    import librosa  # only needed when a pipeline is built

    return librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
        fmin=config.f_min, fmax=config.f_max, htk=False, norm="slaney",
    ).astype(np.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II rows ``[n_mfcc, n_mels]`` (librosa's MFCC transform)."""
    from scipy.fft import dct

    return dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas along time (last axis), edges replicated (HTK formula)."""
    n = torch.arange(-width, width + 1, dtype=x.dtype, device=x.device)
    kernel = (n / (n * n).sum()).flip(0).view(1, 1, -1)
    shape = x.shape
    rows = math.prod(shape[:-1])  # not -1: an exported graph would have to prove frames divide the size
    flat = torch.nn.functional.pad(x.reshape(rows, 1, shape[-1]), (width, width), mode="replicate")
    return torch.nn.functional.conv1d(flat, kernel).reshape(shape)


@functools.lru_cache(maxsize=None)
def _dft_basis(n_fft: int, win_length: int, hop_length: int) -> torch.Tensor:
    """The periodic-Hann-windowed real DFT as a matrix ``[m * hop, 2 * (n_fft // 2 + 1)]`` (cosines,
    then minus sines) over ``m`` chunks of ``hop`` samples. One tensor per setting, so that every
    member of an exported ensemble shares it and onnxruntime computes a shared STFT once
    (its rows: frames cut from ``m`` chunks; ``m * hop`` ≥ ``win_length``)."""
    bins = n_fft // 2 + 1
    m = -(-win_length // hop_length)
    n = torch.arange(win_length, dtype=torch.float64) + (n_fft - win_length) // 2
    angle = 2 * math.pi * torch.arange(bins, dtype=torch.float64)[:, None] * n / n_fft
    window = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
    return F.pad(basis, (0, m * hop_length - win_length)).T.float().contiguous()


class FeatureExtractor(nn.Module):
    """Waveforms ``[batch, samples]`` (or ``[samples]``) → images ``[batch, channels, bins, frames]``."""

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True), persistent=False)
        # the same tensor in every extractor of one setting: an exported ensemble holds it once
        self.register_buffer("dft", _dft_basis(config.n_fft, config.win_length, config.hop_length), persistent=False)
        if config.kind in ("mel", "mfcc"):
            self.register_buffer("mel", torch.from_numpy(mel_filterbank(config)), persistent=False)
        if config.kind == "mfcc" or config.append_mfcc:
            self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mfcc, config.n_mels)), persistent=False)
        self.pitch = PitchTracker(config.sample_rate, config.hop_length) if config.pitch else None

    def analyse(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The dB image before normalisation ``[batch, bins, frames]`` and each frame's
        energy in dB ``[batch, frames]`` (what silence trimming looks at)."""
        c = self.config
        if c.remove_dc:
            wave = wave - wave.mean(dim=-1, keepdim=True)
        power = self.power_spectrum(wave)
        energy = 10.0 * torch.log10(power.sum(dim=-2).clamp_min(1e-10))
        if c.kind != "spectrogram":
            power = torch.matmul(self.mel, power)
        db = 10.0 * torch.log10(power.clamp_min(1e-10))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - c.top_db)
        if c.relative_db:
            db = db - db.amax(dim=(-2, -1), keepdim=True)
        if c.kind == "mfcc":
            db = torch.matmul(self.dct, db)
        elif c.append_mfcc:
            db = torch.cat([db, torch.matmul(self.dct, db)], dim=-2)
        if self.pitch is not None:
            db = torch.cat([db, self.pitch(wave)], dim=-2)
        return db, energy

    def power_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        """|STFT|² ``[batch, n_fft // 2 + 1, frames]`` (centred frames, zero padding).

        One step, two kernels: ``torch.stft`` in torch; in an ONNX export the same transform as
        one matrix product with the windowed DFT basis (:func:`_dft_basis`). onnxruntime's STFT
        kernel and the real/imaginary split after it took about 3 ms of a 3.5 s clip's 11 ms on
        one core (Zen 4), the product 1.1 ms; the two kernels agree to about 1e-6 of the peak
        (tested to 1e-5).
        """
        c = self.config
        if not torch.compiler.is_exporting():
            spec = torch.stft(wave, c.n_fft, c.hop_length, c.win_length, self.window,
                              center=True, pad_mode="constant", return_complex=True)
            return spec.real.square() + spec.imag.square()
        bins = c.n_fft // 2 + 1
        basis = self.dft
        m = basis.shape[0] // c.hop_length
        frames = 1 + (wave.shape[-1] + 2 * (c.n_fft // 2) - c.n_fft) // c.hop_length  # as torch.stft, center=True
        offset = (c.n_fft - c.win_length) // 2  # torch.stft centres the window in the n_fft frame
        x = F.pad(wave, (c.n_fft // 2, c.n_fft // 2 + m * c.hop_length))[..., offset:]
        # frames without unfold: the padded wave in chunks of hop samples, frame i = chunks i..i+m-1
        chunks = x[..., :(frames + m - 1) * c.hop_length].unflatten(-1, (frames + m - 1, c.hop_length))
        spec = (torch.cat([chunks[..., j:j + frames, :] for j in range(m)], dim=-1) @ basis).transpose(-1, -2)
        return spec[..., :bins, :].square() + spec[..., bins:, :].square()

    def power_db(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-power image in dB before normalisation and deltas: ``[batch, bins, frames]``."""
        return self.analyse(wave)[0]

    def finish(self, db: torch.Tensor, stats: "Stats | None" = None) -> torch.Tensor:
        """dB windows ``[batch, bins, frames]`` → model inputs ``[batch, channels, bins, frames]``:
        standardisation (``normalize``), then deltas. ``stats`` (one row per window) is the
        reference of the ``"bins"`` mode; without it each window is its own reference."""
        x = db.unsqueeze(1)
        if self.config.normalize == "window":
            mean = x.mean(dim=(-2, -1), keepdim=True)
            std = x.std(dim=(-2, -1), keepdim=True)
            x = (x - mean) / (std + 1e-5)
        elif self.config.normalize == "bins":
            if stats is None:
                stats = Stats.of(db)
            x = (x - stats.mean[:, None, :, None]) / (stats.std[:, None, None, None] + 1e-5)
        if self.config.deltas:
            d1 = deltas(x)
            x = torch.cat([x, d1, deltas(d1)], dim=1)
        return x

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        return self.finish(self.power_db(wave.float()))


class Stats(NamedTuple):
    """Reference statistics of dB images for the ``"bins"`` normalisation: the mean of each bin
    ``[..., bins]`` and one standard deviation around those means ``[...]``.

    Built from sums so that several clips (a speaker's) pool exactly: :meth:`of` one image's
    frames in ``[first, end)``, :meth:`pool` a list of clips' sums.
    """

    mean: torch.Tensor
    std: torch.Tensor

    @staticmethod
    def sums(db: torch.Tensor, first=None, end=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame count, per-bin sum and per-bin sum of squares of ``db[..., first:end]``
        (a mask, so the frame range may be a tensor and the graph stays exportable); ``first``
        and ``end`` may be ``[batch]`` for a batch ``[batch, bins, frames]``: one count per row."""
        n = db.shape[-1]
        idx = torch.arange(n, device=db.device)
        lo = torch.as_tensor(0 if first is None else first, device=db.device)
        hi = torch.as_tensor(n if end is None else end, device=db.device)
        per_row = lo.dim() > 0 or hi.dim() > 0  # one range per row of a batch
        if per_row:
            lo, hi = lo.reshape(-1, 1), hi.reshape(-1, 1)
        mask = ((idx >= lo) & (idx < hi)).to(db.dtype)  # [frames] or [batch, frames]
        count = mask.sum(-1).clamp_min(1.0)
        if per_row:
            mask = mask.unsqueeze(-2)  # against [batch, bins, frames]
        return count, (db * mask).sum(-1), (db.square() * mask).sum(-1)

    @classmethod
    def from_sums(cls, count, total, squares) -> "Stats":
        count = torch.as_tensor(count, dtype=total.dtype)
        n = count.unsqueeze(-1) if count.dim() else count  # one count per row of a batch
        mean = total / n
        return cls(mean, (squares / n - mean.square()).clamp_min(0).mean(-1).sqrt())

    @classmethod
    def of(cls, db: torch.Tensor, first=None, end=None) -> "Stats":
        """Statistics of one image ``[bins, frames]`` (or a batch ``[B, bins, frames]``: one row
        each) over the frames ``[first, end)`` (default: all)."""
        count, total, squares = cls.sums(db, first, end)
        return cls.from_sums(count, total, squares)

    @classmethod
    def pool(cls, images: list[torch.Tensor], bounds: list[tuple[int, int]]) -> "Stats":
        """One reference for several clips (e.g. one speaker's): their voiced frames pooled."""
        count, total, squares = 0.0, 0.0, 0.0
        for db, (first, end) in zip(images, bounds):
            c, t, s2 = cls.sums(db, first, end)
            count, total, squares = count + c, total + t, squares + s2
        return cls.from_sums(torch.as_tensor(count), total, squares)

    def expand(self, n: int) -> "Stats":
        """Each reference (one, or a batch's ``[batch, bins]``) repeated for its ``n`` windows, in order."""
        bins = self.mean.shape[-1]
        return Stats(self.mean.reshape(-1, 1, bins).expand(-1, n, -1).reshape(-1, bins),
                     self.std.reshape(-1, 1).expand(-1, n).reshape(-1))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": float(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Stats":
        return cls(torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(float(d["std"])))


def extract(wave, config: FeatureConfig) -> torch.Tensor:
    """Functional form: a numpy or torch waveform (or batch) → feature image(s)."""
    wave = torch.as_tensor(np.asarray(wave, dtype=np.float32)) if not torch.is_tensor(wave) else wave
    with torch.no_grad():
        return FeatureExtractor(config)(wave)
