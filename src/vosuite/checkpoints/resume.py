"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the model, the EMA, the optimiser, the schedule's step, the step, the best
validation score and the RNG states of torch (CPU and CUDA), numpy and Python, all as tensors and
plain types so that it loads with ``torch.load(..., weights_only=True)``. The data order needs no
state: sample ``i`` of step ``s`` is a function of (seed, s, rank, i).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vosuite.checkpoints.files import read_checkpoint
from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path

TRAIN_CHECKPOINT_FORMAT = "vosuite-train"
TRAIN_CHECKPOINT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


def rng_state() -> dict[str, Any]:
    """The RNG states of torch, CUDA (when present), numpy and Python as tensors / plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s states (generator states are CPU byte tensors: a checkpoint
    loaded with ``map_location`` onto another device is brought back first)."""
    torch.set_rng_state(state["torch"].cpu())
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])


def save_training_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (model, ema, optimizer, scheduler, step, best, config) plus the RNG states,
    atomically (temporary file + rename)."""
    path = Path(path)
    full = {"format": TRAIN_CHECKPOINT_FORMAT, "version": TRAIN_CHECKPOINT_VERSION, **payload, "rng": rng_state()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(full, tmp)
    return path


def load_training_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`save_training_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    obj = read_checkpoint(path, map_location=map_location)
    if not isinstance(obj, dict) or obj.get("format") != TRAIN_CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a vosuite training checkpoint")
    return obj
