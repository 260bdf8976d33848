"""``emovox serve``: settings from the flags, then uvicorn (one process, or ``--workers N``)."""

from __future__ import annotations

import logging
import os


def app_from_env():
    """uvicorn's factory for each worker process: the settings travel in ``EMOVOX_*``."""
    from .app import create_app
    from .settings import Settings

    return create_app(Settings.from_env())


def serve(*, host: str = "127.0.0.1", port: int = 8000, insecure: bool = False, log_level: str = "info",
          **options) -> int:
    """Run the server until interrupted.

    ``options`` are :class:`~emovox.serve.Settings` fields (``None`` values fall back to the
    environment). Refuses a non-loopback ``host`` without an API key unless ``insecure``.
    """
    import uvicorn

    from ..threads import quiet_openmp
    from .settings import Settings, check_bind

    settings = Settings.from_env(**options)
    check_bind(host, settings.api_key, insecure)
    os.environ.update(settings.to_env())
    # before torch or onnxruntime start their pools (here and in --workers processes, which
    # inherit the environment): the threads of one inference unless told otherwise, idle OpenMP
    # threads sleeping (emovox.threads.quiet_openmp)
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.inference_threads))
    quiet_openmp()
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(levelname)s: %(message)s")
    logging.getLogger("emovox.serve").info(
        "emovox serve on http://%s:%d (%d worker(s), %d inference slot(s) of %d thread(s) each, queue %d, "
        "API key %s)", host, port, settings.workers, settings.concurrent, settings.inference_threads,
        settings.max_queue, "required" if settings.api_key else "off")
    uvicorn.run("emovox.serve.run:app_from_env", factory=True, host=host, port=port, workers=settings.workers,
                log_level=log_level, timeout_graceful_shutdown=5, server_header=False)
    return 0
