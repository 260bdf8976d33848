"""Waveform augmentations: the voices, rooms, microphones and codecs a corpus lacks.

One small class each. Each is called as ``aug(wave, rng)`` on a mono float32 wave at the
working rate and returns a new wave (the input is never modified); ``p`` is the chance that it
acts at all. Fixed settings (``low == high``) turn each into one deterministic condition, which
is how the robustness benchmark degrades test clips with the very same code. Training only:
prediction never augments.
"""

from __future__ import annotations

import io

import numpy as np
import soxr
from scipy import signal

from ..audio import WORKING_RATE


class WaveAugmentation:
    """Base: ``p`` is the probability of acting; subclasses implement :meth:`apply`."""

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.p < 1.0 and rng.random() >= self.p:
            return wave
        return self.apply(np.asarray(wave, dtype=np.float32), rng).astype(np.float32, copy=False)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class Speed(WaveAugmentation):
    """Speed perturbation (Ko et al. 2015): resampled by a factor in ``[low, high]``, which moves
    pitch, formants and tempo together — a cheap stand-in for other vocal tracts."""

    def __init__(self, low: float = 0.9, high: float = 1.1, p: float = 1.0) -> None:
        super().__init__(p)
        self.low, self.high = low, high

    def apply(self, wave, rng):
        factor = rng.uniform(self.low, self.high)
        return soxr.resample(wave, WORKING_RATE * factor, WORKING_RATE, quality="MQ")


class PitchShift(WaveAugmentation):
    """Pitch and formants moved by ``[low, high]`` semitones at the same tempo: other voices
    without :class:`Speed`'s change of speaking rate, itself a cue to emotion. ±3 semitones scale
    formants by 0.84-1.19, the spread between speakers of one gender and beyond. A phase-vocoder
    stretch (librosa, 32 ms frames: a few ms per second of audio, 6x faster than
    ``librosa.effects.pitch_shift``'s 128 ms frames) then a resampling back to the length. The level
    falls by about 1-3 dB (phase-vocoder smearing); the gain augmentation covers far more. Waves
    shorter than one frame are returned as they are."""

    def __init__(self, low: float = -3.0, high: float = 3.0, p: float = 1.0) -> None:
        super().__init__(p)
        self.low, self.high = low, high

    def apply(self, wave, rng):
        import librosa

        n_fft, hop = 512, 128
        factor = 2.0 ** (rng.uniform(self.low, self.high) / 12.0)
        if len(wave) < n_fft:
            return wave
        stft = librosa.stft(wave, n_fft=n_fft, hop_length=hop)
        longer = librosa.istft(librosa.phase_vocoder(stft, rate=1.0 / factor, hop_length=hop),
                               hop_length=hop, n_fft=n_fft)
        shifted = soxr.resample(longer, WORKING_RATE * factor, WORKING_RATE, quality="MQ")
        return librosa.util.fix_length(shifted, size=len(wave))


class Gain(WaveAugmentation):
    """A gain in dB drawn from ``[low, high]`` (no clipping: see :class:`Clipping`)."""

    def __init__(self, low: float = -20.0, high: float = 6.0, p: float = 1.0) -> None:
        super().__init__(p)
        self.low, self.high = low, high

    def apply(self, wave, rng):
        return wave * np.float32(10.0 ** (rng.uniform(self.low, self.high) / 20.0))


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as ``1/f**beta``: white 0, pink 1, brown 2."""
    from scipy import fft

    beta = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    if beta == 0.0:
        noise = rng.standard_normal(n)
    else:
        m = fft.next_fast_len(n, real=True)  # an FFT size without large prime factors
        spectrum = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
        f = np.fft.rfftfreq(m)
        f[0] = f[1] if m > 1 else 1.0
        noise = fft.irfft(spectrum / f ** (beta / 2.0), m)[:n]
    return (noise / (_rms(noise))).astype(np.float32)


class Noise(WaveAugmentation):
    """Additive white, pink or brown noise at an SNR in dB drawn from ``[snr_low, snr_high]``."""

    def __init__(self, snr_low: float = 5.0, snr_high: float = 30.0, colours=("white", "pink", "brown"),
                 p: float = 1.0) -> None:
        super().__init__(p)
        self.snr_low, self.snr_high, self.colours = snr_low, snr_high, tuple(colours)

    def apply(self, wave, rng):
        colour = self.colours[int(rng.integers(len(self.colours)))]
        snr = rng.uniform(self.snr_low, self.snr_high)
        return wave + coloured_noise(len(wave), colour, rng) * np.float32(_rms(wave) / 10.0 ** (snr / 20.0))


class Babble(WaveAugmentation):
    """Other people talking: the sum of ``talkers`` clips from ``pool`` (e.g. the other training
    clips) at an SNR drawn from ``[snr_low, snr_high]``."""

    def __init__(self, pool: list[np.ndarray], talkers: int = 3, snr_low: float = 10.0, snr_high: float = 30.0,
                 p: float = 1.0) -> None:
        super().__init__(p)
        if not pool:
            raise ValueError("babble needs a pool of clips")
        self._pool, self.talkers, self.snr_low, self.snr_high = pool, talkers, snr_low, snr_high

    def apply(self, wave, rng):
        babble = np.zeros(len(wave), dtype=np.float32)
        for _ in range(self.talkers):
            other = self._pool[int(rng.integers(len(self._pool)))]
            if len(other) < len(wave):
                other = np.resize(other, len(wave))
            start = int(rng.integers(0, len(other) - len(wave) + 1))
            babble += other[start:start + len(wave)]
        snr = rng.uniform(self.snr_low, self.snr_high)
        return wave + babble * np.float32(_rms(wave) / (_rms(babble) * 10.0 ** (snr / 20.0)))


def room_impulse_responses(n: int, rt60_low: float, rt60_high: float, seed: int) -> list[np.ndarray]:
    """``n`` simulated rooms (pyroomacoustics: image sources + ray tracing, shoebox rooms of
    random size, RT60 drawn from ``[rt60_low, rt60_high]``, random talker and microphone). The
    same ``seed`` gives the same rooms: ray tracing is stochastic, so pyroomacoustics' own
    generators (numpy's and C++'s) are seeded from ``seed`` for each room."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    for _ in range(n):
        pra.random.seed(int(rng.integers(2**31)))
        dim = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(rt60_low, rt60_high)
        try:
            absorption, _ = pra.inverse_sabine(rt60, dim)
        except ValueError:  # too reverberant for a room this small: use the largest
            absorption = 0.05
        room = pra.ShoeBox(dim.tolist(), fs=WORKING_RATE, materials=pra.Material(absorption), max_order=3,
                           ray_tracing=True, air_absorption=True, use_rand_ism=False)
        room.set_ray_tracing(receiver_radius=0.5, n_rays=2000, energy_thres=1e-5)
        room.set_sound_speed(343.0)
        src = rng.uniform([0.5, 0.5, 1.0], dim - [0.5, 0.5, 1.0])
        mic = rng.uniform([0.5, 0.5, 0.8], dim - [0.5, 0.5, 1.0])
        room.add_source(src.tolist())
        room.add_microphone(mic.tolist())
        room.compute_rir()
        h = np.asarray(room.rir[0][0], dtype=np.float32)
        rirs.append(h / (np.abs(h).max() + 1e-9))
    return rirs


class Reverb(WaveAugmentation):
    """Room reverberation: convolution with one of ``rooms`` simulated impulse responses (RT60 in
    ``[rt60_low, rt60_high]`` s), simulated once per instance from ``seed``; level kept."""

    def __init__(self, rt60_low: float = 0.2, rt60_high: float = 0.9, rooms: int = 24, seed: int = 0,
                 p: float = 1.0) -> None:
        super().__init__(p)
        self.rt60_low, self.rt60_high, self.rooms, self.seed = rt60_low, rt60_high, rooms, seed
        self._rirs: list[np.ndarray] | None = None

    def apply(self, wave, rng):
        if self._rirs is None:
            self._rirs = room_impulse_responses(self.rooms, self.rt60_low, self.rt60_high, self.seed)
        h = self._rirs[int(rng.integers(len(self._rirs)))]
        out = signal.fftconvolve(wave, h)[:len(wave)]
        return out * np.float32(_rms(wave) / _rms(out))


class Band(WaveAugmentation):
    """A microphone's or a line's band: low-pass at ``[low_cut_low, low_cut_high]`` Hz and/or
    high-pass at ``[high_cut_low, high_cut_high]`` Hz (4th-order Butterworth)."""

    def __init__(self, lowpass=(3000.0, 7500.0), highpass=(50.0, 400.0), p: float = 1.0) -> None:
        super().__init__(p)
        self.lowpass, self.highpass = tuple(lowpass), tuple(highpass)

    def apply(self, wave, rng):
        lo = rng.uniform(*self.lowpass)
        hi = rng.uniform(*self.highpass)
        sos = signal.butter(4, [hi, min(lo, WORKING_RATE / 2 - 100)], btype="bandpass", fs=WORKING_RATE,
                            output="sos")
        return signal.sosfilt(sos, wave)


def biquad(kind: str, hz: float, gain_db: float, q: float = 2 ** -0.5) -> np.ndarray:
    """One second-order section (scipy's ``sos`` row) of the Audio EQ Cookbook (R. Bristow-Johnson):
    ``"low_shelf"``, ``"high_shelf"`` or ``"peak"`` at ``hz`` with ``gain_db``. Written out because
    the libraries that ship these filters are GPL (pedalboard) or pull in much more (audiomentations)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * hz / WORKING_RATE
    cos, alpha = np.cos(w0), np.sin(w0) / (2.0 * q)
    if kind == "peak":
        b, den = (1 + alpha * a, -2 * cos, 1 - alpha * a), (1 + alpha / a, -2 * cos, 1 - alpha / a)
    else:
        s = 1.0 if kind == "low_shelf" else -1.0  # the high shelf is the low one with cos's sign flipped
        r = 2.0 * np.sqrt(a) * alpha
        b = (a * ((a + 1) - s * (a - 1) * cos + r), 2 * s * a * ((a - 1) - s * (a + 1) * cos),
             a * ((a + 1) - s * (a - 1) * cos - r))
        den = ((a + 1) + s * (a - 1) * cos + r, -2 * s * ((a - 1) + s * (a + 1) * cos), (a + 1) + s * (a - 1) * cos - r)
    return np.array([*b, *den]) / den[0]


class Equaliser(WaveAugmentation):
    """A microphone's, a room's or a mouth-to-microphone distance's colour: a low shelf (a close
    directional microphone's bass boost, a small loudspeaker's bass cut), a high shelf and one
    peak (Q 0.7-2), each at a frequency drawn log-uniformly from its ``(low, high)`` Hz (``None``:
    that filter off) with a gain drawn from ``gain`` dB (:func:`biquad`); the level is kept.
    Corpora differ most in such fixed per-band gains (SAVEE's lowest bands lie ~14 dB above
    RAVDESS's): the network learns that they say nothing about the emotion."""

    def __init__(self, low_shelf=(80.0, 400.0), high_shelf=(2000.0, 6000.0), peak=(300.0, 4000.0),
                 gain=(-12.0, 12.0), p: float = 1.0) -> None:
        super().__init__(p)
        self.low_shelf, self.high_shelf, self.peak = (None if b is None else tuple(b) for b in (low_shelf, high_shelf, peak))
        self.gain = tuple(gain)
        for band in (self.low_shelf, self.high_shelf, self.peak):
            if band is not None and not 0 < band[0] <= band[1] < WORKING_RATE / 2:
                raise ValueError(f"an equaliser band must be (low, high) Hz with 0 < low <= high < "
                                 f"{WORKING_RATE // 2}, got {band}")
        if len(self.gain) != 2 or self.gain[0] > self.gain[1]:
            raise ValueError(f"the equaliser's gain must be (low, high) dB, got {gain}")

    def apply(self, wave, rng):
        sections = []
        for band, kind in ((self.low_shelf, "low_shelf"), (self.high_shelf, "high_shelf"), (self.peak, "peak")):
            if band is not None:
                hz = float(np.exp(rng.uniform(np.log(band[0]), np.log(band[1]))))
                q = float(rng.uniform(0.7, 2.0)) if kind == "peak" else 2 ** -0.5
                sections.append(biquad(kind, hz, float(rng.uniform(*self.gain)), q))
        if not sections:
            return wave
        out = signal.sosfilt(np.array(sections), wave)
        return out * np.float32(_rms(wave) / _rms(out))


class Telephone(WaveAugmentation):
    """A narrow-band telephone line: 300-3400 Hz, 8 kHz sampling, G.711 µ-law, and back."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p)

    def apply(self, wave, rng):
        sos = signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=WORKING_RATE, output="sos")
        narrow = soxr.resample(signal.sosfilt(sos, wave), WORKING_RATE, 8000)
        mu = 255.0
        x = np.clip(narrow, -1.0, 1.0)
        coded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
        coded = np.round((coded + 1.0) * 127.5) / 127.5 - 1.0  # 8 bits
        decoded = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
        out = soxr.resample(decoded.astype(np.float32), 8000, WORKING_RATE)
        return _fit(out, len(wave))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` samples (codecs and resamplers add or drop a few)."""
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


#: Encoder effort for ``fast`` round trips (FFmpeg's ``compression_level``): libopus complexity 5
#: of 10 (10 is the default), LAME quality 7 of 0-9 (0 is the slowest; LAME's default 3). Measured
#: on a Zen 4 core, 3.7 s RAVDESS clips: Opus 16 kbit/s 27 -> 20 ms, MP3 32 kbit/s 23 -> 13 ms —
#: the codec round trip was ~45 % of the augmentation chain's time although it acts on 5 % of clips.
#: Low-effort encoders are what phones and browsers often run anyway.
FAST_EFFORT = {"opus": "5", "mp3": "7"}


def codec_roundtrip(wave: np.ndarray, codec: str, bitrate: int, fast: bool = False) -> np.ndarray:
    """Encode with PyAV (``"mp3"`` via LAME, ``"opus"`` via libopus in Ogg) and decode back;
    ``fast``: at the lower encoder effort :data:`FAST_EFFORT`."""
    import av

    from ..audio import load

    container, codec_name = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus")}[codec]
    rate = WORKING_RATE
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        options = {"compression_level": FAST_EFFORT[codec]} if fast else {}
        stream = out.add_stream(codec_name, rate=rate, options=options)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    decoded = load(buf.getvalue(), rate)
    return _fit(decoded, len(wave))


class Codec(WaveAugmentation):
    """A lossy codec round trip: one of ``codecs`` (``("mp3", kbit/s)`` or ``("opus", kbit/s)``);
    ``fast``: encoded at a lower effort (:data:`FAST_EFFORT`, about half the time; for training —
    the robustness benchmark's conditions keep the encoders' defaults)."""

    def __init__(self, codecs=(("mp3", 32), ("opus", 16), ("mp3", 64), ("opus", 12)), fast: bool = False,
                 p: float = 1.0) -> None:
        super().__init__(p)
        self.codecs = tuple((str(c), int(k)) for c, k in codecs)
        self.fast = bool(fast)

    def apply(self, wave, rng):
        codec, kbits = self.codecs[int(rng.integers(len(self.codecs)))]
        return codec_roundtrip(wave, codec, kbits * 1000, fast=self.fast)


class Clipping(WaveAugmentation):
    """A DC offset in ``[-dc, dc]`` and an overdriven input: driven up by ``[low, high]`` dB
    above full scale at the peak, clipped at ±1, and brought back to the original level
    (SAVEE carries both)."""

    def __init__(self, dc: float = 0.03, low: float = 0.0, high: float = 12.0, p: float = 1.0) -> None:
        super().__init__(p)
        self.dc, self.low, self.high = dc, low, high

    def apply(self, wave, rng):
        peak = float(np.abs(wave).max()) + 1e-9
        drive = 10.0 ** (rng.uniform(self.low, self.high) / 20.0) / peak
        offset = rng.uniform(-self.dc, self.dc)
        return (np.clip(wave * drive + offset, -1.0, 1.0) / drive).astype(np.float32)


class Chain:
    """Apply waveform augmentations in order (each with its own ``p``)."""

    def __init__(self, augmentations: list[WaveAugmentation]) -> None:
        self.augmentations = list(augmentations)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for aug in self.augmentations:
            wave = aug(wave, rng)
        return wave

    def __repr__(self) -> str:
        return f"Chain({self.augmentations!r})"


#: config name → class, in the order a chain applies them: the talker (speed, pitch), the room
#: (reverb, babble, noise), the microphone and line (eq, band, clipping, telephone, codec), the level.
WAVE_AUGMENTATIONS = {"speed": Speed, "pitch": PitchShift, "reverb": Reverb, "babble": Babble, "noise": Noise, "eq": Equaliser,
                      "band": Band, "clipping": Clipping, "telephone": Telephone, "codec": Codec, "gain": Gain}


def check_wave_config(cfg: dict | None) -> None:
    """Raise ``ValueError`` naming an unknown augmentation or option of ``augment.wave``, without
    building anything (the rooms' simulation waits for training)."""
    import inspect

    unknown = set(cfg or {}) - set(WAVE_AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown waveform augmentation {', '.join(sorted(unknown))}; expected "
                         f"{', '.join(WAVE_AUGMENTATIONS)}")
    for name, opts in (cfg or {}).items():
        if opts is None:
            continue
        if not isinstance(opts, dict):
            raise ValueError(f"augment.wave.{name} must be a mapping of options, e.g. {{p: 0.5}}, not {opts!r}")
        params = inspect.signature(WAVE_AUGMENTATIONS[name]).parameters
        bad = sorted(set(opts) - set(params) | (set(opts) & {"pool"}))
        if bad:
            raise ValueError(f"augment.wave.{name} has no option {bad[0]!r}; it takes "
                             f"{', '.join(k for k in params if k != 'pool')}")


def chain_from_config(cfg: dict | None, *, pool: list[np.ndarray] | None = None, seed: int = 0) -> Chain | None:
    """``{"noise": {"p": 0.5}, "reverb": {...}, ...}`` → a :class:`Chain` in the canonical order
    (None entries off). ``pool``: clips for babble; ``seed``: the rooms' simulation."""
    if not cfg:
        return None
    check_wave_config(cfg)
    chosen = []
    for name, cls in WAVE_AUGMENTATIONS.items():
        opts = cfg.get(name)
        if opts is None:
            continue
        opts = dict(opts)
        if name == "babble":
            opts["pool"] = pool or []
        if name == "reverb":
            opts.setdefault("seed", seed)
        chosen.append(cls(**opts))
    return Chain(chosen) if chosen else None
