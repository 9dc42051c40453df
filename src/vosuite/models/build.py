"""Build networks by registered name (:mod:`vosuite.registry`) and load state-dict checkpoints
(aot-benchmark files for DeAOT; strict key checking).

A deformable variant (``*-deform``) loads a vanilla checkpoint: its offset-network keys, and only
those, may be missing; they keep their zero-offset initialisation and a warning names them.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import nn

from vosuite.errors import InputError
from vosuite.io.checkpoint_file import read_checkpoint
from vosuite.io.weight_quantization import merge_int8_weights
from vosuite.models.deaot import DeAOT, DeAOTConfig
from vosuite.models.s2s import S2S, S2SConfig

# Wrapper keys seen around aot-benchmark state dicts (trainer checkpoints, EMA copies).
_WRAPPER_KEYS = ("state_dict", "ema", "model", "model_state_dict", "module")


def _preview(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit})" if len(keys) > limit else "")


def extract_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside ``obj``: unwraps ``{'state_dict': ...}`` / ``{'ema': ...}`` (nested
    too) and strips ``module.`` prefixes (DataParallel / DDP). A vosuite checkpoint's
    ``int8_weights`` (:mod:`vosuite.io.weight_quantization`) are dequantised into it, and its
    ``shared_weights`` (:mod:`vosuite.io.shared_weights`) taken from the other model's file."""
    if isinstance(obj, Mapping) and "shared_weights" in obj:
        from vosuite.io.shared_weights import merge_shared

        own = extract_state_dict({k: v for k, v in obj.items() if k != "shared_weights"}, source)
        return merge_shared(own, obj["shared_weights"], source)
    if isinstance(obj, Mapping) and "int8_weights" in obj:
        return merge_int8_weights(extract_state_dict(obj.get("state_dict"), source), obj["int8_weights"], source)
    while isinstance(obj, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            raise InputError(f"{source}: no state dict found (top-level keys: {_preview(sorted(map(str, obj)))})")
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
            parts.append(f"{len(missing)} missing keys ({_preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_preview(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({_preview(mismatched)})")
        raise InputError(f"{source} does not fit {model.cfg.name}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=not allowed)
    return allowed


def load_checkpoint(model: DeAOT | S2S, path: str | Path) -> DeAOT | S2S:
    """Load a state-dict checkpoint file (``torch.load(weights_only=True)``; aot-benchmark files for
    DeAOT) into ``model``. A deformable model accepts a vanilla checkpoint (offset networks missing;
    warns, see module doc)."""
    path = Path(path)
    obj = read_checkpoint(path)
    skipped = load_state_dict_strict(model, extract_state_dict(obj, str(path)), str(path),
                                     allow_missing=getattr(model, "offset_parameter_names", list)())
    if skipped:
        warnings.warn(f"{path} has no offset-network weights for {model.cfg.name} ({len(skipped)} tensors: "
                      f"{_preview(skipped, 2)}); they stay zero-initialised, i.e. zero offsets",
                      stacklevel=2)
    return model


def build(name_or_config: str | DeAOTConfig | S2SConfig = "deaot-t",
          checkpoint: str | Path | None = None) -> DeAOT | S2S:
    """A network in eval mode: ``build("deaot-t", "weights.pt")``, ``build("s2spp-mnv2")``.

    ``name_or_config``: a registered model name (:func:`vosuite.registry.list_models`) or a
    :class:`DeAOTConfig` / :class:`S2SConfig`. ``checkpoint``: optional state dict (aot-benchmark
    files for DeAOT; vanilla weights load into ``-deform`` variants). The network's
    ``default_size`` (the internal resolution its weights were trained for) is None.
    """
    from vosuite.registry import build_network

    model = build_network(name_or_config)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()
