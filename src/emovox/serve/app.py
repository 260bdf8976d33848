"""The FastAPI app: routes, JSON errors, API key, CORS, the page.

Every error is ``{"error": {"code", "message"}}`` with a 4xx/5xx status; audio problems are
4xx (never 500). The model loads in a background thread at start-up: ``/healthz`` answers at
once, ``/readyz`` and the API answer 503 until the model is there.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..audio import AudioError
from ..inference.recognizer import TooLittleSpeech
from ..labels import parse_emotions
from . import schemas
from .gate import Busy, Gate, Timeout
from .service import Service, TooLong
from .settings import Settings
from .upload import UploadError, uploaded_audio

log = logging.getLogger("emovox.serve")
STATIC = Path(__file__).resolve().parent / "static"
#: The page may load and call only this server: no CDN, no third-party requests.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}
ERRORS = {status: {"model": schemas.ErrorBody} for status in (400, 401, 408, 413, 415, 422, 503, 504)}
AUDIO_BODY = {"requestBody": {"required": True, "description": "the recording: any container emovox decodes "
              "(wav, flac, mp3, ogg/opus, m4a, webm, ...)", "content": {
                  "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                      "file": {"type": "string", "format": "binary"}}}},
                  "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                  "audio/webm": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def create_app(settings: Settings | None = None, recognizer=None) -> FastAPI:
    """The app around one Recognizer.

    Parameters
    ----------
    settings : limits, model and security; default :meth:`Settings.from_env`.
    recognizer : an already loaded :class:`~emovox.Recognizer` (or anything with its
        interface); ``None`` loads ``settings.model`` in the background at start-up.
    """
    from fastapi_offline import FastAPIOffline  # /docs with its scripts served locally, not from a CDN

    from .. import __version__

    settings = settings or Settings.from_env()
    gate = Gate(settings.concurrent, settings.max_queue)
    state = {"service": None, "error": None}

    def load() -> None:
        try:
            rec, speaker = recognizer, None
            if rec is None:
                from ..inference import Recognizer

                options = dict(backend=settings.backend, threads=settings.inference_threads,
                               min_confidence=settings.min_confidence, min_speech_seconds=settings.min_speech_seconds,
                               measure_speech=settings.measure_speech)
                rec = Recognizer.load(settings.model, **options)
                # beside the bundled model, the bundled speaker-adaptive one answers ?speaker_norm=1 (torch only)
                from ..inference.recognizer import BUNDLED_SPEAKER_MODEL

                speaker = (Recognizer.load(speaker_adaptive=True, **options) if settings.model is None
                           and settings.backend == "torch" and (BUNDLED_SPEAKER_MODEL / "config.json").is_file()
                           else None)
            state["service"] = Service(rec, settings.model if recognizer is None else getattr(rec, "path", None),
                                       max_seconds=settings.max_seconds, speaker_recognizer=speaker)
            _fit_torch_threads(settings.inference_threads)
            log.info("model %s ready (%s backend, %d slots x %d threads, queue %d)", state["service"].info["model_id"],
                     rec.backend.name, settings.concurrent, settings.inference_threads, settings.max_queue)
        except Exception as err:  # reported by /readyz, and the API answers 503
            log.exception("could not load the model")
            state["error"] = f"{type(err).__name__}: {err}"

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=load, name="emovox-load", daemon=True).start()
        yield
        gate.close()

    app = FastAPIOffline(title="emovox", version=__version__, lifespan=lifespan, static_url="/docs-static",
                         description="Speech emotion recognition: send a recording, get the emotion and the "
                                     "probability of each. The page at / uses this API.")
    app.state.settings, app.state.gate, app.state.model = settings, gate, state
    _errors(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"])

    def service() -> Service:
        if state["service"] is None:
            raise HTTPException(503, "the model is " + ("not available: " + state["error"] if state["error"]
                                                        else "still loading"), headers={"Retry-After": "2"})
        return state["service"]

    api = APIRouter(prefix="/v1", dependencies=[Depends(_key_check(settings.api_key))] if settings.api_key else [],
                    responses=ERRORS)

    async def answer(request: Request, what: str, spectrogram: bool, *options) -> dict:
        start = time.perf_counter()
        deadline = time.monotonic() + settings.timeout
        svc = service()
        async with uploaded_audio(request, settings.max_upload_bytes, settings.timeout) as path:
            await run_in_threadpool(svc.check_header, path)  # too long? refused before any decoding
            work = svc.predict if what == "predict" else svc.timeline
            out = await gate.run(work, path, spectrogram, *options, deadline=deadline)
        out["elapsed_ms"] = round(1000 * (time.perf_counter() - start), 1)
        return out

    spectrogram_query = Query(False, description="also return the mel-spectrogram of the audio as a PNG (base64)")

    emotions_query = Query(None, description="answer among these emotions only, e.g. angry,happy,neutral,sad "
                                             "(your label set): calm counts as neutral where the list has neutral "
                                             "but not calm, other emotions left out are dropped")

    def label_set(emotions: Optional[str], speaker_norm: bool = False):
        names = parse_emotions(emotions)
        if names is not None:
            try:
                service().answering(names, speaker_norm)  # a bad list is refused before the upload is read
            except ValueError as err:
                raise HTTPException(422, f"emotions: {err}") from None
        return names

    @api.post("/predict", response_model=schemas.PredictResponse, openapi_extra=AUDIO_BODY,
              summary="Emotion of one recording")
    async def predict(request: Request, spectrogram: bool = spectrogram_query, emotions: Optional[str] = emotions_query):
        """The emotion heard in the recording with every emotion's probability, or
        ``no_speech`` / ``uncertain``. Long recordings are averaged over 2.5 s windows; use
        ``/v1/timeline`` to see how the emotion changes."""
        return await answer(request, "predict", spectrogram, label_set(emotions))

    @api.post("/timeline", response_model=schemas.TimelineResponse, openapi_extra=AUDIO_BODY,
              summary="Emotion over time in a longer recording")
    async def timeline(request: Request, spectrogram: bool = spectrogram_query,
                       speaker_norm: bool = Query(False, description="speaker-adaptive: the recording is its "
                                                  "speaker's reference (one talker). The bundled "
                                                  "speaker-adaptive model answers beside the bundled model "
                                                  "(torch backend); any other model answers itself: with its "
                                                  "feature statistics if it takes them (torch), else judged "
                                                  "against the recording's mean answer (/v1/model: "
                                                  "speaker_adaptation)"),
                       emotions: Optional[str] = emotions_query):
        """Segments (start, end, emotion or silence, confidence) and per-cell probabilities:
        voice activity detection, then overlapping windows, as ``emovox timeline``."""
        return await answer(request, "timeline", spectrogram, speaker_norm, label_set(emotions, speaker_norm))

    @api.get("/model", response_model=schemas.ModelInfo, summary="The loaded model")
    async def model():
        """Labels, preprocessing, calibration, model-card fields and this server's limits."""
        from ..plots import EMOTION_COLORS

        svc = service()
        info = {k: v for k, v in svc.info.items() if not k.startswith("_")}
        return {**info, "version": __version__,
                "colors": {k: v for k, v in EMOTION_COLORS.items() if k in info["labels"] or k in ("silence", "uncertain")},
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_seconds": settings.max_seconds,
                           "max_concurrent": settings.concurrent, "max_queue": settings.max_queue,
                           "timeout": settings.timeout, "threads_per_inference": settings.inference_threads,
                           "api_key_required": bool(settings.api_key)}}

    app.include_router(api)

    @app.get("/healthz", response_model=schemas.Health, summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.Ready, responses={503: {"model": schemas.Ready}},
             summary="Readiness: the model is loaded")
    async def readyz():
        svc = state["service"]
        if svc is None:
            return JSONResponse({"ready": False, "detail": state["error"] or "loading"}, 503)
        return {"ready": True, "model_id": svc.info["model_id"]}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
        return response

    return app


def _key_check(expected: str):
    """A dependency that accepts the key in ``X-API-Key`` or ``Authorization: Bearer``."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")
    bearer = HTTPBearer(auto_error=False, description="the server's API key as a bearer token")
    want = expected.encode()

    async def check(key: str | None = Security(header), token: HTTPAuthorizationCredentials | None = Security(bearer)):
        given = key or (token.credentials if token else None)
        if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), want):
            raise HTTPException(401, "a valid API key is needed (header X-API-Key or Authorization: Bearer)",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


def _fit_torch_threads(threads: int) -> None:
    """The spectrogram runs torch ops even with the ONNX backend: same thread budget."""
    import sys

    if "torch" in sys.modules:
        from ..threads import configure_torch

        configure_torch(threads, sys.modules["torch"])


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         408: "timeout", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
         429: "too_many_requests", 503: "unavailable", 504: "timeout"}


def _errors(app: FastAPI) -> None:
    """One JSON error shape for everything, and each failure its proper 4xx/5xx."""

    @app.exception_handler(UploadError)
    async def upload_error(request, err: UploadError):
        return error(err.status, err.code, err.message)

    @app.exception_handler(TooLong)
    async def too_long(request, err: TooLong):
        return error(422, "too_long", str(err))

    @app.exception_handler(AudioError)
    async def not_audio(request, err: AudioError):
        return error(422, "not_audio", f"not usable audio: {err.reason}")  # the temp file's name stays private

    @app.exception_handler(TooLittleSpeech)
    async def too_little_speech(request, err: TooLittleSpeech):
        return error(422, "too_little_speech", str(err))

    @app.exception_handler(Busy)
    async def busy(request, err: Busy):
        return error(503, "busy", str(err), {"Retry-After": str(err.retry_after)})

    @app.exception_handler(Timeout)
    async def timeout(request, err: Timeout):
        return error(504, "timeout", str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err: StarletteHTTPException):
        code = CODES.get(err.status_code, "error")
        if err.status_code == 503 and "loading" in str(err.detail):
            code = "not_ready"
        return error(err.status_code, code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError):
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return error(422, "invalid_request", where or "invalid request")

    @app.exception_handler(Exception)
    async def internal(request, err: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "unexpected server error (logged)")
