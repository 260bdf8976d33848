"""``emovox serve``: an HTTP API and a web page around one loaded :class:`~emovox.Recognizer`.

``create_app(Settings(...))`` builds the FastAPI app; ``emovox serve`` runs it with uvicorn.
Modules: :mod:`.settings` (flags and environment variables), :mod:`.upload` (request body →
one temporary file, size-capped), :mod:`.gate` (bounded concurrency and queue),
:mod:`.service` (decoding, speech check, predictions, spectrogram — run off the event loop),
:mod:`.schemas` (the answers' pydantic models), :mod:`.app` (routes, errors, auth) and
``static/`` (the page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere).
"""

from .settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings | None = None, recognizer=None):
    """The FastAPI app; see :func:`emovox.serve.app.create_app`."""
    from .app import create_app as _create

    return _create(settings, recognizer)
