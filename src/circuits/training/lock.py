"""Exclusive folder locks: one writer at a time per run folder (and per report runs folder).

:func:`lock_folder` takes an OS file lock (``fcntl.flock``) on ``FOLDER/.lock`` and writes the
holder's process id into that file. The kernel drops the lock when the holder exits in any way
(return, exception, ``kill -9``, a crash), so a lock never outlives its process and there is
nothing to clean up: the ``.lock`` file itself stays in the folder, holding the last holder's pid.
A second writer does not wait: it gets :class:`FolderLockedError` at once, naming the holder's pid.

Not guaranteed: on systems without ``fcntl`` (Windows) the lock is a no-op; on network file
systems ``flock`` may be local to one machine. A process that forks while holding a lock shares it
with the child (the ``spawn`` workers of :mod:`circuits.training.parallel` do not inherit it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

__all__ = ["LOCK_FILE", "FolderLock", "FolderLockedError", "lock_folder", "lock_holder"]

#: The lock file inside a locked folder (holds the pid of the process that last locked it).
LOCK_FILE = ".lock"


class FolderLockedError(BlockingIOError):
    """Another process holds the folder's lock (``holder_pid``: its process id, when known)."""

    def __init__(self, message: str, folder: Path, holder_pid: int | None):
        super().__init__(message)
        self.folder, self.holder_pid = folder, holder_pid

    def __str__(self) -> str:
        return self.args[0]


class FolderLock:
    """A held lock; release it with :meth:`release` or by leaving its ``with`` block (or by exiting)."""

    def __init__(self, folder: Path, fd: int | None):
        self.folder, self._fd = folder, fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()


def lock_folder(folder: str | os.PathLike, what: str = "folder") -> FolderLock:
    """Lock ``folder`` (created if missing) for this process, or raise :class:`FolderLockedError` at once.

    ``what`` names the folder in the error ("run folder", "runs folder"). Locking a folder this
    process already holds also raises (each lock is one open file).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        return FolderLock(folder, None)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = lock_holder(folder)
        who = f"this process (pid {pid})" if pid == os.getpid() else f"process {pid}" if pid is not None else "another process (pid not known yet)"
        raise FolderLockedError(
            f"{what} {folder} is in use by {who}, which holds its lock {path}; "
            "wait for it to finish or stop it, then try again (the lock is released as soon as that process exits)",
            folder,
            pid,
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return FolderLock(folder, fd)


def lock_holder(folder: str | os.PathLike, wait_s: float = 0.5) -> int | None:
    """The pid written in ``folder``'s lock file (``None`` if absent or not written yet after ``wait_s``).

    Only meaningful while the lock is held: the file keeps the last holder's pid after it exits.
    """
    path = Path(folder) / LOCK_FILE
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if time.monotonic() >= deadline:  # the holder locked but has not written its pid yet
            return None
        time.sleep(0.02)
