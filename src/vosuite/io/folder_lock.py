"""An exclusive lock on a folder while one vosuite run writes into it.

The lock is an advisory ``flock`` on the folder itself (no lock file is left behind): a second
run that wants the same folder gets an :class:`~vosuite.errors.InputError` at once instead of
both writing, and a run that dies (SIGKILL included) releases it with its file descriptors.
Platforms without ``fcntl`` get no lock.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from vosuite.errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """Hold an exclusive lock on ``folder`` (which must exist) until :meth:`release` or garbage collection."""

    def __init__(self, folder: str | os.PathLike, what: str = "output folder") -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        if fcntl is None:
            return
        fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{self.folder}: {what} is in use by another vosuite run (wait for it or choose "
                             "another folder)") from None
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let other runs take the folder (idempotent)."""
        if self._fd is not None:
            self._finalizer()
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
