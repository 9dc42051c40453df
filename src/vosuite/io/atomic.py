"""Atomic file writes: a reader never sees a half-written output, a crash leaves nothing foreign.

Every file vosuite writes goes first to a temporary sibling named ``.<name>.<token>.tmp<suffix>``,
created with the user's umask (mode ``0o666`` masked by the kernel, as ``open()`` does) and held
under an exclusive ``flock`` while it is written. On success it is fsynced and renamed onto the
target. A temporary file whose writer died (SIGKILL, power loss) is no longer locked: vosuite
recognises it by its name (:func:`is_temporary_name`) and removes it (:func:`remove_stale_temporary`)
when it next claims the same output (:mod:`vosuite.io.output`), and never reports it as a user's
file. A temporary file that is still locked belongs to a live writer and is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temporaries are then never removed
    fcntl = None  # type: ignore[assignment]

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^./]{0,16})?$", re.DOTALL)
_NAME_KEPT = 120  # characters of the target's name kept in its temporary's name (NAME_MAX is 255)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` has the shape of :func:`atomic_path`'s temporary files."""
    return _TEMPORARY.match(name) is not None


def temporary_target(name: str) -> str | None:
    """The target name (truncated as in the temporary's name) a temporary file name stands for, else None."""
    match = _TEMPORARY.match(name)
    return match.group("name") if match else None


def _temporary_name(target: Path, suffix: str) -> str:
    token = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(8))
    return f".{target.name[:_NAME_KEPT]}.{token}.tmp{suffix[:17]}"


def _lock(fd: int, blocking: bool) -> bool:
    """Take an exclusive flock on ``fd``; False when another open file holds it (non-blocking)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def remove_stale_temporary(path: Path) -> bool:
    """Delete ``path``, a temporary file of :func:`atomic_path`, if no live writer holds it.

    Returns True when it was removed (or had already gone), False when a writer still holds it
    (or locks cannot be taken on this platform).
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    try:
        if not _lock(fd, blocking=False):
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def remove_stale_temporaries(target: Path) -> None:
    """Remove the unlocked temporary files that earlier writers of ``target`` left in its folder."""
    folder = target.parent
    if not folder.is_dir():
        return
    prefix = f".{target.name[:_NAME_KEPT]}."
    for entry in folder.iterdir():
        if entry.name.startswith(prefix) and temporary_target(entry.name) == target.name[:_NAME_KEPT] \
                and entry.is_file() and not entry.is_symlink():
            remove_stale_temporary(entry)


def _create_temporary(target: Path, suffix: str) -> tuple[Path, int]:
    """A new, locked temporary file next to ``target`` (mode 0o666 minus the umask)."""
    for _ in range(100):
        tmp = target.parent / _temporary_name(target, suffix)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        _lock(fd, blocking=True)
        return tmp, fd
    raise FileExistsError(f"{target.parent}: no free temporary name for {target.name}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic; it is
    created with the user's umask and locked (see the module docstring) until renamed. Before the
    rename it is fsynced, so the new name never points at data still in the page cache; after it
    the folder is fsynced (best effort), so the rename itself survives a crash. On any exception
    the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    tmp, fd = _create_temporary(target, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)
    _fsync_folder(target.parent)


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk (Windows needs a writable handle for that)."""
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk; platforms that cannot open a folder are skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
