"""Output folders: never write into a user's results by accident."""

from __future__ import annotations

import shutil
from pathlib import Path

from vosuite.errors import InputError


def prepare_output(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse a folder that already has content unless ``overwrite`` (then empty it)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: output folder is not empty (pass --overwrite to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
