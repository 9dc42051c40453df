"""vosuite's model checkpoint: a plain dict, loaded with ``torch.load(weights_only=True)``::

    {"format": "vosuite", "version": 1,
     "model": {"name": "deaot-t", "family": "deaot",   # a registered family (deaot, s2s, bba, dino)
               "config": {...the family's config fields...}},
     "inference": {"size": 240},   # optional: the internal resolution the weights were trained for
     "state_dict": {...},           # float32, or float16 for shipped weights (cast up on load)
     "int8_weights": {...},         # optional: large weights as int8 (vosuite.checkpoints.int8)
     "shared_weights": {...}}       # optional: frozen tensors kept in another shipped model's file
                                    # (vosuite.checkpoints.shared)

Reading returns the parts (:class:`VosuiteCheckpoint`); :mod:`vosuite.factory` builds the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vosuite.checkpoints.int8 import quantize_state_dict
from vosuite.checkpoints.shared import split_shared
from vosuite.checkpoints.state_dict import extract_state_dict, shipped_state
from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path

CHECKPOINT_FORMAT = "vosuite"
CHECKPOINT_VERSION = 1



@dataclass(frozen=True)
class VosuiteCheckpoint:
    """The parts of a vosuite checkpoint: its model's family, variant name and saved config fields,
    its float32-or-float16 tensors (int8 and shared ones merged in) and recorded inference size."""

    family: str
    name: str
    config: Mapping
    state: dict[str, torch.Tensor]
    size: int | None


def is_vosuite_checkpoint(obj: object) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def parse_checkpoint(obj: Mapping, source: str) -> VosuiteCheckpoint:
    """The parts of a loaded vosuite checkpoint; an InputError naming ``source`` when one is missing
    or of another version."""
    if obj.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{source}: a vosuite checkpoint of version {obj.get('version')!r}; this vosuite reads "
                         f"version {CHECKPOINT_VERSION}")
    info = obj.get("model")
    if not isinstance(info, Mapping) or not isinstance(info.get("config"), Mapping):
        raise InputError(f"{source}: vosuite checkpoint without a model config")
    family, name = info.get("family"), info.get("config", {}).get("name", info.get("name"))
    if not isinstance(family, str) or not isinstance(name, str):
        raise InputError(f"{source}: vosuite checkpoint without its model's family and name")
    packed = "int8_weights" in obj or "shared_weights" in obj
    state = extract_state_dict(obj if packed else obj.get("state_dict"), source)
    return VosuiteCheckpoint(family, name, info["config"], state, _inference_size(obj.get("inference"), source))


def _inference_size(info: object, source: str) -> int | None:
    """The checkpoint's ``inference.size`` (None when absent)."""
    if info is None:
        return None
    size = info.get("size") if isinstance(info, Mapping) else "bad"
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise InputError(f"{source}: inference.size must be a positive integer, not {size!r}")
    return size


def config_from_dict(data: Mapping, source: str, cls: type) -> object:
    """A config dataclass ``cls`` from its saved fields (unknown fields are an error, missing ones
    default)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InputError(f"{source}: model config has fields this vosuite does not know ({', '.join(unknown)}); "
                         "upgrade vosuite")
    return _dataclass_from_dict(cls, data)


def _dataclass_from_dict(cls: type, data: Mapping) -> object:
    """Rebuild a (possibly nested) frozen dataclass saved with ``dataclasses.asdict``."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            value = _dataclass_from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class StorageOptions:
    """How a checkpoint stores its tensors.

    Attributes:
        dtype: cast floating tensors (``torch.float16`` halves a shipped file); None: as they are.
        int8: convolution and linear weights as int8 per output channel, the rest float16
            (:mod:`vosuite.checkpoints.int8`), but the tensors under the ``int8_keep`` prefixes.
        share_from: the tensors under ``share_prefixes`` are not stored but taken from that
            shipped model's file when loading (:mod:`vosuite.checkpoints.shared`; they must equal it).
    """

    dtype: torch.dtype | None = None
    int8: bool = False
    int8_keep: tuple[str, ...] = ()
    share_from: str | None = None
    share_prefixes: tuple[str, ...] = ()


_NO_STORAGE = StorageOptions()


def write_checkpoint(out: str | Path, family: str, config: object, state: Mapping[str, torch.Tensor],
                     inference_size: int | None, storage: StorageOptions = _NO_STORAGE) -> Path:
    """Write a vosuite checkpoint of a network (its ``family``, config dataclass and state dict),
    atomically."""
    out = Path(out)
    payload: dict = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {"name": config.name, "family": family, "config": dataclasses.asdict(config)},
        "inference": {"size": inference_size},
    }
    if storage.share_from is not None:
        state, payload["shared_weights"] = split_shared(state, storage.share_from, storage.share_prefixes,
                                                        *shipped_state(storage.share_from))
    payload["state_dict"] = {k: _cast(v.detach().clone(), storage.dtype) for k, v in state.items()}
    if storage.int8:  # quantised from the network's own (not the cast) values
        payload["state_dict"], payload["int8_weights"] = quantize_state_dict(state, storage.int8_keep)
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return out


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
