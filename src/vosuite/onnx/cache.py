"""The per-user cache of ``--runtime onnx`` exports: a network is exported once, not on every run.

An entry is ``<cache>/onnx/<key>/`` (:func:`vosuite.io.cache_dir.user_cache_dir`) holding a
``vosuite export onnx`` folder. The key is the network's name and a sha256 over everything the
graphs depend on: the weights (:func:`~vosuite.onnx.export.weights_digest`), the config, the
export format, opset, the vosuite and torch versions and the source of the network and exporter
code (:func:`code_digest`), so an edited model file never runs a stale graph.

Writing is atomic and safe against other processes: the export goes to a fresh hidden folder
inside the cache root, which is then renamed onto the key. When that rename finds a complete
entry (another process won), the fresh export is dropped and theirs used. A reader uses an entry
only when its manifest is complete (every graph present with its recorded sha256) and records the
same weights; a damaged one is moved aside inside the cache root, deleted and exported again.
Files get the permissions of the user's umask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from vosuite.errors import InputError
from vosuite.io.cache_dir import user_cache_dir
from vosuite.models.s2s import S2S
from vosuite.onnx.export import FORMAT, OPSET, export_model, read_manifest, weights_digest
from vosuite.version import __version__

#: Changes when the layout of an entry or of its key does.
CACHE_FORMAT = 1
#: The code an exported graph depends on, relative to the vosuite package.
GRAPH_SOURCES = ("nn", "models", "onnx/export.py")
#: Hidden folders (unfinished exports, damaged entries) older than this are someone's crash: removed.
STALE_SECONDS = 24 * 3600
#: os.rename's errors when the target folder exists and is not empty (or is not a folder).
_TAKEN = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR}


def cache_root() -> Path:
    """The folder of the cached exports: ``<user cache>/onnx``."""
    return user_cache_dir() / "onnx"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the source files of :data:`GRAPH_SOURCES` (path and bytes, in path order)."""
    package = Path(__file__).resolve().parent.parent
    files = sorted(f for source in GRAPH_SOURCES for f in
                   ((package / source).rglob("*.py") if (package / source).is_dir() else [package / source]))
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(package).as_posix()}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(model: nn.Module, digest: str | None = None) -> str:
    """``<network name>-<sha256 of the weights, config and exporter>`` (32 hex digits) of ``model``'s
    float32 export; ``digest``: its :func:`weights_digest`, when already known."""
    parts = {"cache_format": CACHE_FORMAT, "format": FORMAT, "opset": OPSET, "vosuite": __version__,
             "torch": torch.__version__, "code": code_digest(), "int8": False,
             "family": "s2s" if isinstance(model, S2S) else "deaot",
             "config": dataclasses.asdict(model.cfg), "weights_sha256": digest or weights_digest(model)}
    text = json.dumps(parts, sort_keys=True, default=str)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", model.cfg.name)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def cached_export(model: nn.Module, digest: str | None = None) -> Path:
    """The cache entry of ``model``'s export, exported now when missing or damaged (about 2 to 5 s).

    Raises OSError when the cache cannot be written (or there is no home folder to hold it).
    """
    digest = digest or weights_digest(model)
    try:
        root = cache_root()
    except RuntimeError as error:  # Path.home() without HOME or a password entry
        raise OSError(f"no cache folder: {error}") from error
    entry = root / cache_key(model, digest)
    if is_complete(entry, model, digest):
        return entry
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    fresh = _hidden(root, entry.name, "new")
    os.mkdir(fresh)
    try:
        export_model(model, fresh)
        _apply_umask(fresh)
        return _publish(fresh, entry, model, digest)
    finally:
        _remove(fresh, root)


def is_complete(folder: Path, model: nn.Module, digest: str) -> bool:
    """Whether ``folder`` is a whole export of ``model`` with the weights ``digest``: a manifest
    naming the network, these weights and every graph, each present with its recorded sha256."""
    graphs = {"encoder.onnx", "propagation.onnx", "initial_state.onnx" if isinstance(model, S2S) else "decoder.onnx"}
    try:
        manifest = read_manifest(folder)
        return (manifest["weights_sha256"] == digest and manifest["model"]["name"] == model.cfg.name
                and set(manifest["graphs"]) == graphs)
    except (InputError, OSError, ValueError, LookupError, TypeError, AttributeError):
        return False


def _publish(fresh: Path, entry: Path, model: nn.Module, digest: str) -> Path:
    """Rename ``fresh`` onto ``entry``; another process's complete entry wins, a damaged one is replaced."""
    for _ in range(5):
        try:
            found = os.lstat(entry)
        except FileNotFoundError:
            found = None
        try:
            os.rename(fresh, entry)
            return entry
        except OSError as error:
            if error.errno not in _TAKEN:
                raise
        if is_complete(entry, model, digest):
            return entry
        if found is not None:
            _discard(entry, found)
    raise OSError(errno.EBUSY, "the cache entry keeps changing under other processes", str(entry))


def _discard(entry: Path, damaged: os.stat_result) -> None:
    """Move the damaged ``entry`` aside and delete it; an entry that replaced it meanwhile (another
    inode) is put back."""
    aside = _hidden(entry.parent, entry.name, "old")
    try:
        os.rename(entry, aside)
    except FileNotFoundError:
        return
    if not os.path.samestat(os.lstat(aside), damaged):
        with contextlib.suppress(OSError):
            os.rename(aside, entry)
    _remove(aside, entry.parent)


def _hidden(root: Path, name: str, kind: str) -> Path:
    """A new hidden name inside ``root`` for an entry being written or deleted."""
    return root / f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _apply_umask(folder: Path) -> None:
    """Give the files in ``folder`` the umask's permissions (the exporter's temporary files are 0600);
    the folder itself was made by ``os.mkdir``, which applies the umask."""
    mode = os.stat(folder).st_mode & 0o666
    for path in folder.iterdir():
        os.chmod(path, mode)


def _remove(path: Path, root: Path) -> None:
    """Delete ``path`` (a folder or file directly inside ``root``, links not followed), if it exists."""
    if path.parent != root:
        raise ValueError(f"{path} is not inside the cache root {root}")
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    """Delete hidden folders that crashed processes left in ``root`` (older than a day)."""
    cutoff = time.time() - STALE_SECONDS
    for path in root.glob(".*"):
        with contextlib.suppress(OSError):
            if path.lstat().st_mtime < cutoff:
                _remove(path, root)
