"""The user's cache folder for vosuite (ONNX exports and other files that can be made again)."""

from __future__ import annotations

import os
from pathlib import Path

#: Names the cache folder itself (its ``onnx/`` etc. live directly inside).
OVERRIDE_ENV = "VOSUITE_CACHE_DIR"


def user_cache_dir() -> Path:
    """``$VOSUITE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vosuite``, else ``~/.cache/vosuite``.

    Empty variables count as unset, and so does a relative ``XDG_CACHE_HOME`` (the XDG base
    directory specification says to ignore it). The folder is not created here.
    """
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "vosuite"
    return Path.home() / ".cache" / "vosuite"
