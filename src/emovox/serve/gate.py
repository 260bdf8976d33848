"""Bounded inference: a few slots, a bounded queue in front of them, a deadline per request.

Inference runs in a thread pool with one thread per slot, off the event loop, so the server
keeps answering health checks, uploads and 503s while the CPUs are busy. A request that
cannot get in line (the queue is full) or whose deadline passes while it waits gets
:class:`Busy` (503 + Retry-After); one whose inference outlives the deadline gets
:class:`Timeout`. A slot is held until its thread really finishes (a thread cannot be
cancelled), so the bound on concurrent work stays true even after a timeout.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable


class Busy(Exception):
    """No slot in time: the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Timeout(Exception):
    """The inference took longer than the request's deadline."""


class Gate:
    """``await gate.run(fn, *args, deadline=...)`` runs ``fn`` in one of ``slots`` threads.

    Parameters
    ----------
    slots : inferences running at once.
    queue : requests allowed to wait for a slot; beyond that, :class:`Busy` at once.
    initializer : called once in each worker thread (e.g. to set per-thread state).
    """

    def __init__(self, slots: int, queue: int, initializer: Callable[[], None] | None = None) -> None:
        self.slots, self.queue = slots, queue
        self.executor = ThreadPoolExecutor(slots, thread_name_prefix="emovox-infer", initializer=initializer)
        self.running = 0
        self.waiting = 0
        self._free: asyncio.Semaphore | None = None
        self._mean_seconds = 0.5  # running mean of an inference's duration, for Retry-After

    def retry_after(self) -> int:
        """Seconds until the queue in front of a newcomer has likely drained (at least 1)."""
        ahead = self.waiting + self.running
        return max(1, math.ceil(ahead * self._mean_seconds / self.slots))

    async def run(self, fn: Callable, *args, deadline: float):
        """Run ``fn(*args)`` in a slot; ``deadline`` is a :func:`time.monotonic` time."""
        if self._free is None:  # created inside the server's event loop
            self._free = asyncio.Semaphore(self.slots)
        if self._free.locked() and self.waiting >= self.queue:
            raise Busy(f"the server is busy ({self.running} running, {self.waiting} waiting); retry later",
                       self.retry_after())
        self.waiting += 1
        try:
            await asyncio.wait_for(self._free.acquire(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise Busy("the server is busy: no inference slot before the request's timeout", self.retry_after()) from None
        finally:
            self.waiting -= 1
        self.running += 1
        start = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        future.add_done_callback(lambda f: self._release(f, start))
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise Timeout("the inference took longer than the request timeout") from None

    def _release(self, future, start: float) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: an abandoned (timed-out) failure is not reported as unhandled
        self.running -= 1
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (time.monotonic() - start)
        self._free.release()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
