"""The weights that ship inside the package: where they live and the check that they are intact."""

from __future__ import annotations

from pathlib import Path

from vosuite.checkpoints.files import file_sha256
from vosuite.errors import InputError

#: Where weights shipped with the package live (``<file>.pt`` and its card ``<file>.md``).
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_path(file_name: str) -> Path:
    """The path of a shipped file, ``weights/<file_name>``."""
    return WEIGHTS_DIR / file_name


def verified(path: Path, sha256: str | None) -> Path:
    """``path`` once its sha256 matches ``sha256`` (None: not checked); an InputError for a damaged
    or replaced file."""
    if sha256 is not None:
        digest = file_sha256(path)
        if digest != sha256:
            raise InputError(f"{path}: sha256 {digest[:12]}... differs from the registered {sha256[:12]}... "
                             "(a damaged or replaced file; reinstall vosuite)")
    return path
