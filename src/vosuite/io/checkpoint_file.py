"""Reading checkpoint files: ``torch.load(weights_only=True)`` on the CPU, any failure one line."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vosuite.errors import InputError


def read_checkpoint(path: str | os.PathLike) -> object:
    """The object in a checkpoint file (tensors on the CPU, no pickled code); an InputError naming
    the file when it is missing or cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure becomes a one-line input error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise InputError(f"cannot read checkpoint {path}: {first}") from exc
