"""The tensor dict inside a loaded checkpoint, and strict loading of one into a module.

Any layout is accepted: plain state dicts, aot-benchmark's ``state_dict`` / ``ema`` wrappers,
DataParallel's ``module.`` prefixes, vosuite's int8 and shared tensors.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import nn

from vosuite.checkpoints.files import file_sha256, read_checkpoint
from vosuite.checkpoints.int8 import merge_int8_weights
from vosuite.checkpoints.shared import checked_entry, merge_shared
from vosuite.checkpoints.shipped import shipped_path
from vosuite.errors import InputError

# Wrapper keys seen around aot-benchmark state dicts (trainer checkpoints, EMA copies).
_WRAPPER_KEYS = ("state_dict", "ema", "model", "model_state_dict", "module")


def preview(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit})" if len(keys) > limit else "")


def extract_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside ``obj``: unwraps ``{'state_dict': ...}`` / ``{'ema': ...}`` (nested
    too) and strips ``module.`` prefixes (DataParallel / DDP). A vosuite checkpoint's
    ``int8_weights`` (:mod:`vosuite.checkpoints.int8`) are dequantised into it, and its
    ``shared_weights`` (:mod:`vosuite.checkpoints.shared`) taken from the other model's file."""
    if isinstance(obj, Mapping) and "shared_weights" in obj:
        entry = checked_entry(obj["shared_weights"], source)
        own = extract_state_dict({k: v for k, v in obj.items() if k != "shared_weights"}, source)
        return merge_shared(own, entry, *shipped_state(entry["model"]), source)
    if isinstance(obj, Mapping) and "int8_weights" in obj:
        return merge_int8_weights(extract_state_dict(obj.get("state_dict"), source), obj["int8_weights"], source)
    while isinstance(obj, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            raise InputError(f"{source}: no state dict found (top-level keys: {preview(sorted(map(str, obj)))})")
        obj = inner
    if not isinstance(obj, Mapping):
        raise InputError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                           allow_missing: Collection[str] = ()) -> list[str]:
    """Copy ``state`` into ``model`` (cast to the model's dtypes). Raises InputError on missing,
    unexpected or mis-shaped keys, naming a few of each; keys in ``allow_missing`` may be absent
    (they keep the model's values). Returns the allowed keys that were missing."""
    own = model.state_dict()
    allowed = sorted((set(own) - set(state)) & set(allow_missing))
    missing = sorted(set(own) - set(state) - set(allow_missing))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({preview(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({preview(mismatched)})")
        raise InputError(f"{source} does not fit {model.cfg.name}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=not allowed)
    return allowed


def shipped_state(model_name: str) -> tuple[dict[str, torch.Tensor], str]:
    """(the float32 state dict of a shipped model's file ``weights/<model_name>.pt``, its sha256):
    the tensors another shipped file shares (:mod:`vosuite.checkpoints.shared`)."""
    path = shipped_path(f"{model_name}.pt")
    if not path.is_file():
        raise InputError(f"shares tensors with {model_name}, whose weights ({path}) are not installed")
    state = extract_state_dict(read_checkpoint(path), str(path))
    return {name: t.float() if t.is_floating_point() else t for name, t in state.items()}, file_sha256(path)
