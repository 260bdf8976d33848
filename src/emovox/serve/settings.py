"""Server settings: command-line flags over ``EMOVOX_*`` environment variables over defaults.

Worker processes started by ``--workers N`` rebuild their settings from the environment, so
the environment is the one channel that carries them (:meth:`Settings.to_env`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field

from ..audio import MAX_SECONDS_ENV
from ..threads import available_cores as cpu_count  # the affinity mask, not the machine's total
from ..threads import share

#: Environment variable of each setting. ``EMOVOX_MAX_SECONDS`` is also :func:`emovox.audio.load`'s
#: default limit everywhere else (CLI, library), where it is 4 h when unset; the server's is 600 s.
ENV = {
    "model": "EMOVOX_MODEL", "backend": "EMOVOX_BACKEND", "min_confidence": "EMOVOX_MIN_CONFIDENCE",
    "min_speech_seconds": "EMOVOX_MIN_SPEECH_SECONDS", "measure_speech": "EMOVOX_MEASURE_SPEECH",
    "max_upload_mb": "EMOVOX_MAX_UPLOAD_MB", "max_seconds": MAX_SECONDS_ENV,
    "max_concurrent": "EMOVOX_MAX_CONCURRENT", "max_queue": "EMOVOX_MAX_QUEUE",
    "timeout": "EMOVOX_TIMEOUT", "threads": "EMOVOX_THREADS", "workers": "EMOVOX_WORKERS",
    "api_key": "EMOVOX_API_KEY", "cors_origins": "EMOVOX_CORS_ORIGINS",
}


@dataclass(frozen=True)
class Settings:
    """What one server process needs.

    Parameters
    ----------
    model : model folder or ``.onnx`` file; ``None``: the bundled model.
    backend : ``"torch"`` or ``"onnx"``.
    min_confidence : below this top probability the answer is ``uncertain``.
    min_speech_seconds : below this much speech (silero VAD) the answer is ``no_speech``;
        ``None``: the Recognizer's default (0.3 s).
    measure_speech : report the seconds of speech of speech answers too (the VAD then hears
        whole recordings instead of stopping once it has heard ``min_speech_seconds``).
    max_upload_mb : largest request body, in MB (10**6 bytes); larger gets 413.
    max_seconds : longest recording, in seconds; longer gets 422.
    max_concurrent : inferences running at once in this process; ``None``: CPUs / (workers × threads).
    max_queue : requests allowed to wait for an inference slot; more get 503 + Retry-After.
    timeout : seconds a request may take (upload, wait and inference) before 408/503/504.
    threads : CPU threads per inference; ``None``: ``$OMP_NUM_THREADS``, else CPUs / (workers ×
        max_concurrent), at least 1 (:func:`emovox.threads.share`).
    workers : server processes.
    api_key : when set, ``/v1/*`` needs it in ``X-API-Key`` or ``Authorization: Bearer``.
    cors_origins : origins allowed to call the API from another site's page; empty: CORS off.
    """

    model: str | None = None
    backend: str = "torch"
    min_confidence: float = 0.0
    min_speech_seconds: float | None = None
    measure_speech: bool = False
    max_upload_mb: float = 20.0
    max_seconds: float = 600.0
    max_concurrent: int | None = None
    max_queue: int = 64
    timeout: float = 60.0
    threads: int | None = None
    workers: int = 1
    api_key: str | None = None
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {self.backend!r}")
        for name in ("max_upload_mb", "max_seconds", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_concurrent", "threads", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be 0 or more, got {self.max_queue!r}")
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence!r}")
        if self.min_speech_seconds is not None and not self.min_speech_seconds >= 0:
            raise ValueError(f"min_speech_seconds must be 0 or more, got {self.min_speech_seconds!r}")

    @property
    def concurrent(self) -> int:
        """Inference slots of this process: by default this process's share of the CPUs
        (CPUs / workers) divided by the threads each inference was told to use (1 by default)."""
        return self.max_concurrent or share(threads=self.threads, cores=max(1, cpu_count() // self.workers)).workers

    @property
    def inference_threads(self) -> int:
        """Threads per inference, so that all slots of all workers together fit the CPUs
        (oversubscribed OpenMP threads made one prediction 20-40x slower on 2 cores)."""
        return share(self.workers * self.concurrent, self.threads, cores=cpu_count()).threads

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Settings from ``EMOVOX_*`` variables; ``overrides`` that are not ``None`` win."""
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {}
        for name, var in ENV.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(name, raw, types[name], var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("cors_origins"), (list, str)):
            values["cors_origins"] = _origins(values["cors_origins"])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``EMOVOX_*`` variables that rebuild these settings in a worker process."""
        out = {}
        for name, var in ENV.items():
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[var] = ",".join(value) if name == "cors_origins" else str(value)
        return out


def _parse(name: str, raw: str, kind: str, var: str):
    if "bool" in kind:
        if raw.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"{var}={raw!r} is not a yes/no value (1/0, true/false, yes/no, on/off)")
        return raw.strip().lower() in ("1", "true", "yes", "on")
    try:
        if "float" in kind:
            return float(raw)
        if "int" in kind:
            return int(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a number") from None
    return _origins(raw) if name == "cors_origins" else raw


def _origins(value) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(o.strip() for o in items if o.strip())


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to serve beyond this machine without an API key, unless told to."""
    if not is_loopback(host) and not api_key and not insecure:
        raise ValueError(f"refusing to listen on {host} without an API key: anyone who can reach it could "
                         "use it. Set --api-key / EMOVOX_API_KEY, or pass --insecure if that is intended")
