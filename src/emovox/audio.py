"""Audio input: the one place where recordings are decoded.

Every recording, whatever its container, codec, channel count or sample rate,
becomes a mono ``float32`` wave in [-1, 1] at :data:`WORKING_RATE`. Anything
that is not usable audio raises :class:`AudioError`, never a decoder's own
exception, so callers can skip bad files with one ``except``.

Decoding tries libsndfile (via soundfile) first: it is fast and sniffs the
format from the content, so a FLAC named ``.wav`` still loads. What it cannot
read (AAC/M4A, WebM, MP4, ...) goes to FFmpeg through PyAV.

Hostile input: a file longer than a limit (:func:`duration_limit`, 4 h unless
``EMOVOX_MAX_SECONDS`` or ``max_seconds=`` says otherwise) is refused from its header when it
declares its length, and decoding stops as soon as the limit is passed when it does not (or
lies), so a tiny file that decodes to hours of audio never fills memory. Channels are
downmixed block by block, so a long multichannel file holds one mono copy at most.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

#: Sample rate (Hz) of every wave handed to the feature pipeline.
WORKING_RATE = 16_000

#: File extensions treated as audio when scanning folders (lower case).
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".aiff", ".aif",
)

#: Longest recording :func:`load` decodes when neither ``max_seconds=`` nor the environment says.
DEFAULT_MAX_SECONDS = 4 * 3600.0
#: Environment variable with the longest recording in seconds (the server's limit too).
MAX_SECONDS_ENV = "EMOVOX_MAX_SECONDS"
#: Sample rates (Hz) accepted from a file or an array; anything outside is not audio.
MIN_RATE, MAX_RATE = 1_000, 1_000_000

__all__ = ["AUDIO_EXTENSIONS", "WORKING_RATE", "DEFAULT_MAX_SECONDS", "MAX_SECONDS_ENV", "AudioError", "from_array",
           "is_audio_file", "load", "stream", "duration", "duration_limit"]


class AudioError(ValueError):
    """An input that is not usable audio.

    Parameters
    ----------
    source : str
        The file name as given, or ``'<bytes>'``, ``'<stream>'``, ``'<array>'``.
    reason : str
        Why it cannot be used, e.g. ``'file not found'``.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read audio {source!r}: {reason}")

    def __reduce__(self):
        # keeps the error picklable (worker processes can send it back)
        return type(self), (self.source, self.reason)


def duration_limit(value: float | None = None, environ=None) -> float:
    """The duration limit in seconds: ``value`` if given, else ``$EMOVOX_MAX_SECONDS``, else
    :data:`DEFAULT_MAX_SECONDS` (4 h). Raises ValueError for a limit that is not positive."""
    if value is None:
        raw = (os.environ if environ is None else environ).get(MAX_SECONDS_ENV, "")
        if not raw.strip():
            return DEFAULT_MAX_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{MAX_SECONDS_ENV}={raw!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or np.isnan(value) or value <= 0:
        raise ValueError(f"max_seconds must be a positive number of seconds, got {value!r}")
    return float(value)


def load(source, sample_rate: int = WORKING_RATE, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode a recording to a mono wave.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray or binary file object
        A path, the encoded file's bytes, or an open binary file (read to its end).
    sample_rate : int, optional
        Rate of the returned wave in Hz, :data:`WORKING_RATE` by default.
    max_seconds : float, optional
        Longest recording accepted (``None``: :func:`duration_limit`, i.e. ``$EMOVOX_MAX_SECONDS``
        or 4 h; ``math.inf``: no limit). Checked from the header and while decoding.

    Returns
    -------
    numpy.ndarray
        1-D, C-contiguous ``float32`` samples, nominally in [-1, 1].

    Raises
    ------
    AudioError
        If the source is missing, empty, not decodable, has no samples, contains NaN or
        infinite samples, an absurd sample rate or no channels, or is longer than the limit.
    TypeError
        If ``source`` is none of the accepted types.
    """
    limit = duration_limit(max_seconds)
    name, data = _open(source)
    samples, rate, _ = _decode(data, name, limit)
    return from_array(samples, rate, sample_rate, source=name)


def from_array(samples, sample_rate: int, target_rate: int = WORKING_RATE, source: str = "<array>") -> np.ndarray:
    """Validate, downmix and resample samples already in memory.

    Parameters
    ----------
    samples : array_like
        1-D, or 2-D as ``(frames, channels)`` (soundfile's layout). A 2-D array
        with ``shape[0] < shape[1]`` and ``shape[0] <= 8`` is taken as
        ``(channels, frames)``. Integer dtypes are scaled to [-1, 1] by their
        range; float values are kept as they are (not clipped).
    sample_rate : int
        Rate of ``samples`` in Hz.
    target_rate : int, optional
        Rate of the returned wave, :data:`WORKING_RATE` by default.
    source : str, optional
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        1-D, C-contiguous ``float32`` wave at ``target_rate`` (always a new array).

    Raises
    ------
    AudioError
        If the array is not numeric, has the wrong shape, no samples, non-finite
        samples, or ``sample_rate`` is not a positive number (within 1 kHz..1 MHz).
    """
    _check_rate(target_rate, "target_rate")
    try:
        _check_rate(sample_rate, "sample_rate")
        if not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate {sample_rate:g} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    except ValueError as err:
        raise AudioError(source, str(err)) from None
    try:
        x = np.asarray(samples)
    except (ValueError, TypeError) as err:  # e.g. ragged nested lists
        raise AudioError(source, f"not an array of samples ({_short(err)})") from None
    x = _to_float(x, source)
    if x.ndim == 2:
        if x.shape[0] < x.shape[1] and x.shape[0] <= 8:
            x = x.T  # (channels, frames): few rows, many columns
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 0 else x.reshape(0)
    if x.size == 0:
        raise AudioError(source, "no audio samples")
    if not np.isfinite(x).all():
        raise AudioError(source, "contains NaN or infinite samples")
    if sample_rate != target_rate:
        # downmixed first, so soxr resamples one channel instead of all of them
        x = soxr.resample(x, sample_rate, target_rate, quality="HQ")
    return np.array(x, dtype=np.float32, order="C")


def stream(source, sample_rate: int = WORKING_RATE, block_seconds: float = 5.0, *,
           max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Decode a recording block by block: memory stays flat however long the file is.

    Yields 1-D ``float32`` mono blocks at ``sample_rate`` of about ``block_seconds`` each (the
    last may be shorter). Their concatenation matches :func:`load` up to the resampler's
    block-boundary rounding. Formats libsndfile reads are streamed with it, the rest with PyAV;
    bytes and file objects are read into memory first (as :func:`load` does). Memory stays
    flat, so there is no duration limit unless ``max_seconds`` is given.

    Raises
    ------
    AudioError
        As :func:`load`, when the source cannot be opened, holds no samples or non-finite ones,
        or passes ``max_seconds``.
    """
    limit = None if max_seconds is None else duration_limit(max_seconds)
    _check_rate(sample_rate, "sample_rate")
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    name, data = _open(source)
    try:
        blocks = _stream_soundfile(data, name, _soundfile_rate(data), block_seconds)
    except MemoryError:
        raise
    except Exception:  # not for libsndfile: FFmpeg tries
        blocks = None
    if blocks is None:
        blocks = _stream_av(data, name, block_seconds)
    n = 0
    resampler = None
    for samples, rate in blocks:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(name, f"sample rate {rate:g} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
        if samples.shape[1] == 0:
            raise AudioError(name, "no audio channels")
        x = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
        if not np.isfinite(x).all():
            raise AudioError(name, "contains NaN or infinite samples")
        if rate != sample_rate:
            resampler = resampler or soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
            x = resampler.resample_chunk(x)
        if x.size:
            n += x.size
            if limit is not None and n > limit * sample_rate:
                raise AudioError(name, _too_long(None, limit))
            yield np.array(x, dtype=np.float32, order="C")
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            n += tail.size
            yield np.array(tail, dtype=np.float32, order="C")
    if n == 0:
        raise AudioError(name, "no audio samples")


def _soundfile_rate(data) -> int:
    if isinstance(data, io.BytesIO):
        data.seek(0)
    return sf.info(data).samplerate


def _stream_soundfile(data, name: str, rate: int, block_seconds: float):
    if isinstance(data, io.BytesIO):
        data.seek(0)
    blocksize = max(1, int(rate * block_seconds))

    def blocks():
        try:
            for b in sf.blocks(data, blocksize=blocksize, dtype="float32", always_2d=True):
                yield b, rate
        except sf.LibsndfileError as err:
            raise AudioError(name, f"decoding failed ({_short(err.error_string)})") from None
    return blocks()


def _stream_av(data, name: str, block_seconds: float):
    import av

    if isinstance(data, io.BytesIO):
        data.seek(0)
    try:
        container = av.open(data, mode="r")
    except Exception as err:
        raise AudioError(name, f"not a decodable audio file ({_short(getattr(err, 'strerror', None) or err)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(name, "no audio stream in the file")
        resampler = av.AudioResampler(format="fltp")
        pending, size, rate = [], 0, None
        try:
            for frame in container.decode(container.streams.audio[0]):
                rate = rate or frame.sample_rate
                for f in resampler.resample(frame):
                    pending.append(f.to_ndarray())
                    size += pending[-1].shape[1]
                if size >= rate * block_seconds:
                    yield np.concatenate(pending, axis=1).T, rate
                    pending, size = [], 0
            pending += [f.to_ndarray() for f in resampler.resample(None)]
        except av.FFmpegError as err:
            raise AudioError(name, f"decoding failed ({_short(err)})") from None
        if pending and rate:
            yield np.concatenate(pending, axis=1).T, rate


def duration(source) -> float | None:
    """Seconds of audio in a file, from its header (``None`` if unknown or not a path)."""
    if not isinstance(source, (str, os.PathLike)) or not os.path.isfile(source):
        return None
    try:
        return float(sf.info(os.fspath(source)).duration)
    except Exception:
        pass
    try:
        import av

        with av.open(os.fspath(source)) as c:
            return float(c.duration) / 1e6 if c.duration else None
    except Exception:
        return None


def is_audio_file(path) -> bool:
    """True if ``path`` has an audio extension (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


# ---------------------------------------------------------------- decoding


def _open(source) -> tuple[str, str | io.BytesIO]:
    """Name ``source`` and check it cheaply: ``(name, path or in-memory file)``."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = os.fsdecode(path)
        if not os.path.exists(path):
            raise AudioError(name, "file not found")
        if os.path.isdir(path):
            raise AudioError(name, "is a directory, not a file")
        try:
            size = os.path.getsize(path)
        except OSError as err:
            raise AudioError(name, err.strerror or str(err)) from None
        if size == 0:
            raise AudioError(name, "empty file")
        return name, path
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(source)
    elif hasattr(source, "read"):
        # read whole: both decoders can then rewind, even on pipes and sockets
        name = source.name if isinstance(getattr(source, "name", None), str) else "<stream>"
        try:
            data = source.read()
        except (OSError, ValueError) as err:
            raise AudioError(name, f"cannot read the file object ({err})") from None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"file object {name!r} must be opened in binary mode")
    else:
        raise TypeError(f"cannot load audio from a {type(source).__name__}; pass a path, bytes or a binary file")
    if not data:
        raise AudioError(name, "empty file")
    return name, io.BytesIO(data)


def _decode(data: str | io.BytesIO, name: str, limit: float = DEFAULT_MAX_SECONDS) -> tuple[np.ndarray, float, int]:
    """Decode a whole file, downmixed: ``(1-D float32 array, rate, channels in the file)``, at
    most ``limit`` seconds.

    The one entry point for decoders; a block reader for long files belongs beside it.
    """
    try:
        return _decode_soundfile(data, name, limit)
    except (MemoryError, AudioError):
        raise
    except Exception as err:  # any libsndfile failure means: let FFmpeg try
        sf_reason = _short(getattr(err, "error_string", None) or err)
    try:
        return _decode_av(data, name, limit)
    except _NoAudio as err:
        raise AudioError(name, str(err)) from None
    except (MemoryError, AudioError):
        raise
    except Exception as err:
        av_reason = _short(getattr(err, "strerror", None) or err)
        raise AudioError(name, f"not a decodable audio file (soundfile: {sf_reason}; ffmpeg: {av_reason})") from None


#: frames above this in a header mean "length unknown" (libsndfile's SF_COUNT_MAX and the like)
_UNKNOWN_FRAMES = 2 ** 62


def _too_long(seconds: float | None, limit: float) -> str:
    what = f"declares {seconds:.0f} s" if seconds is not None else "decodes to more than that"
    return (f"longer than the limit of {limit:g} s: it {what} (raise max_seconds= or "
            f"{MAX_SECONDS_ENV} for longer recordings)")


def _check_file_rate(name: str, rate) -> None:
    if not rate or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(name, f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")


class _Mono:
    """Mono blocks gathered while decoding, refused as soon as they pass ``limit`` seconds."""

    def __init__(self, name: str, rate: float, limit: float) -> None:
        self.name, self.blocks, self.n, self.channels = name, [], 0, 0
        self.max_frames = limit * rate
        self.limit = limit

    def add(self, block: np.ndarray, channel_axis: int) -> None:
        if block.shape[channel_axis] == 0:
            raise AudioError(self.name, "no audio channels")
        self.channels = block.shape[channel_axis]
        x = block.mean(axis=channel_axis, dtype=np.float32) if block.shape[channel_axis] > 1 \
            else np.array(block.reshape(-1), dtype=np.float32)
        self.n += x.size
        if self.n > self.max_frames:
            raise AudioError(self.name, _too_long(None, self.limit))
        self.blocks.append(x)

    def wave(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def _decode_soundfile(data, name: str, limit: float) -> tuple[np.ndarray, float]:
    if isinstance(data, io.BytesIO):
        data.seek(0)
    with sf.SoundFile(data) as f:
        rate, frames = f.samplerate, f.frames
        if f.channels < 1:
            raise AudioError(name, "no audio channels")
        _check_file_rate(name, rate)
        if 0 < frames < _UNKNOWN_FRAMES and frames / rate > limit:
            raise AudioError(name, _too_long(frames / rate, limit))
        mono = _Mono(name, rate, limit)
        block = max(1, int(min(rate * 30, limit * rate + 1)))
        while True:
            b = f.read(block, dtype="float32", always_2d=True)
            if not len(b):
                break
            mono.add(b, channel_axis=1)
    return mono.wave(), rate, f.channels


class _NoAudio(Exception):
    """FFmpeg opened the container but it holds no audio."""


def _decode_av(data, name: str, limit: float) -> tuple[np.ndarray, float]:
    import av  # slow to import, and only needed for what libsndfile cannot read

    if isinstance(data, io.BytesIO):
        data.seek(0)
    with av.open(data, mode="r") as container:
        if not container.streams.audio:
            raise _NoAudio("no audio stream in the file")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > limit:
            raise AudioError(name, _too_long(declared, limit))
        # planar float, native layout and rate: to_ndarray() is then (channels, samples)
        resampler = av.AudioResampler(format="fltp")
        mono, rate = None, None
        for frame in container.decode(stream):
            if rate is None:
                rate = frame.sample_rate
                _check_file_rate(name, rate)
                mono = _Mono(name, rate, limit)
            for f in resampler.resample(frame):
                mono.add(f.to_ndarray(), channel_axis=0)
        if mono is not None:
            for f in resampler.resample(None):
                mono.add(f.to_ndarray(), channel_axis=0)
    if mono is None or not mono.blocks:
        raise _NoAudio("no audio samples")
    return mono.wave(), rate, mono.channels


def _declared_seconds(container, stream) -> float | None:
    """What the container's header says the audio lasts (``None`` if it does not say)."""
    seconds = []
    if container.duration and container.duration > 0:
        seconds.append(container.duration / 1e6)
    if stream.duration and stream.time_base and stream.duration > 0:
        seconds.append(float(stream.duration * stream.time_base))
    return min(seconds) if seconds else None


def _short(message) -> str:
    """First line of a library message, without trailing punctuation."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else type(message).__name__
    return text.rstrip(".")[:200]


# ---------------------------------------------------------------- checks


def _check_rate(rate, what: str) -> None:
    """A sample rate must be a positive, finite real number."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what} must be a positive number of Hz, got {rate!r}")


def _to_float(x: np.ndarray, source: str) -> np.ndarray:
    """``x`` as floats: integers scaled to [-1, 1] by their dtype's range."""
    if x.ndim not in (1, 2):
        raise AudioError(source, f"expected a 1-D or 2-D array of samples, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.signedinteger):
        return (x / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = (int(np.iinfo(x.dtype).max) + 1) // 2  # unsigned PCM is centred on half its range
        return ((x - float(half)) / half).astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        # values beyond float32's range become inf here and are then rejected
        with np.errstate(over="ignore"):
            return x.astype(np.float32, copy=False)
    raise AudioError(source, f"samples must be real numbers, got dtype {x.dtype}")
