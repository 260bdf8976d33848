"""Crash-safe files: atomic writes and one-writer locks.

An atomic write goes to a temporary file in the same folder, is flushed to disk (``fsync``)
and renamed over the target: a crash leaves the old file or the new one, never half of one.

A :class:`FileLock` keeps two processes from writing one results file or run folder. It is
an ``flock`` on a ``*.lock`` file that holds the owner's PID: the kernel drops the lock when
its process dies (even by SIGKILL), so a lock file left behind by a dead process is stale and
is taken over (with a warning naming the dead PID); a live holder is named in the error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

__all__ = ["LockError", "FileLock", "atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename is durable once its folder is synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the file
    written there is fsynced and renamed to ``path`` (else removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); give it the mode open() would, so a model folder
    # written by one user can be read by another (a server's), as the umask allows
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


class LockError(OSError):
    """Another live process holds the lock; ``pid`` is its process id (``None`` if unknown)."""

    def __init__(self, target: str, pid: int | None, host: str | None = None, lock: str | None = None) -> None:
        who = f"process {pid}" if pid else "another process"
        if host and host != socket.gethostname():
            who += f" on {host}"
        super().__init__(errno.EBUSY, f"{target} is being written by {who} (lock file {lock or target + '.lock'}); "
                                      "wait for it to finish, or stop it first")
        self.target, self.pid, self.host, self.lock = target, pid, host, lock

    def __str__(self) -> str:  # without OSError's "[Errno 16]" prefix
        return self.strerror

    def __reduce__(self):
        return type(self), (self.target, self.pid, self.host, self.lock)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """Exclusive lock on ``target`` (a file or folder): ``<target>.lock`` beside it, or
    ``<folder>/.lock`` with ``inside=True``.

    Use as a context manager or with :meth:`acquire` / :meth:`release`. Non-blocking:
    :meth:`acquire` raises :class:`LockError` naming the holder's PID when it is taken.
    """

    def __init__(self, target: str | os.PathLike, *, inside: bool = False) -> None:
        self.target = Path(target)
        self.path = self.target / ".lock" if inside else self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None
        self.took_over: int | None = None  # the dead PID whose stale lock was taken over

    def acquire(self) -> "FileLock":
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                pid, host = self._holder(fd)
                os.close(fd)
                raise LockError(str(self.target), pid, host, str(self.path)) from None
            try:  # the holder may have unlinked the file between our open and flock: retry
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old, host = self._holder(fd)
            if old and old != os.getpid():
                state = "no longer running" if not _pid_alive(old) or host != socket.gethostname() \
                    else "alive but not holding it"
                log.warning("taking over the stale lock %s of process %s (%s)", self.path, old, state)
                self.took_over = old
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise LockError(str(self.target), None, None, str(self.path))

    @staticmethod
    def _holder(fd: int) -> tuple[int | None, str | None]:
        try:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            return (int(text[0]), text[1] if len(text) > 1 else None) if text else (None, None)
        except (OSError, ValueError):
            return None, None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # unlinked while still held: nobody can lock the old inode after us
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
