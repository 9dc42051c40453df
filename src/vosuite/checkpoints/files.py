"""Reading checkpoint files: ``torch.load(weights_only=True)`` on the CPU, any failure one line;
file digests."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch

from vosuite.errors import InputError


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> object:
    """The object in a checkpoint file (tensors on ``map_location``, no pickled code); an InputError
    naming the file when it is missing or cannot be read. torch's warnings about the file's format
    are not shown: the file either loads safely or is refused in one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure becomes a one-line input error
        raise InputError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None


def read_checkpoint_bytes(data: bytes, source: str) -> object:
    """:func:`read_checkpoint` of a file's bytes (e.g. a member of a zip); ``source`` names it in errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure becomes a one-line input error
        raise InputError(f"cannot read checkpoint {source}: {_first_line(exc)}") from None


def _first_line(error: BaseException) -> str:
    """What is wrong with the file, in a few words (torch's own messages run to many lines and
    suggest loading unsafely)."""
    text = " ".join(str(error).split())
    if "Weights only load failed" in text:
        return "it holds pickled objects or code, which vosuite never loads (not a weights-only checkpoint)"
    if isinstance(error, (EOFError, RuntimeError)) and "zip" in text.lower():
        return f"truncated or not a PyTorch checkpoint ({text[:120]})"
    return f"not a PyTorch checkpoint ({type(error).__name__}: {text[:120]})"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
