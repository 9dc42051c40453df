"""Build networks by variant name (DeAOT and S2S families) and load state-dict checkpoints
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
from vosuite.models.deaot import DeAOT, DeAOTConfig, get_config
from vosuite.models.s2s import S2S, S2S_VARIANTS, S2SConfig, get_s2s_config

#: Model families: the value of a vosuite checkpoint's ``model.family``.
FAMILIES: dict[str, tuple[type, type]] = {"deaot": (DeAOT, DeAOTConfig), "s2s": (S2S, S2SConfig)}

# Wrapper keys seen around aot-benchmark state dicts (trainer checkpoints, EMA copies).
_WRAPPER_KEYS = ("state_dict", "ema", "model", "model_state_dict", "module")


def _preview(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit})" if len(keys) > limit else "")


def extract_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside ``obj``: unwraps ``{'state_dict': ...}`` / ``{'ema': ...}`` (nested
    too) and strips ``module.`` prefixes (DataParallel / DDP)."""
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


def model_config(name: str) -> DeAOTConfig | S2SConfig:
    """The config of a variant name of any family (``_`` and case ignored); an unknown name is an
    InputError listing the known ones."""
    try:
        return get_config(name)
    except KeyError as exc:
        deaot_error = str(exc.args[0])
    try:
        return get_s2s_config(name)
    except KeyError as exc:
        s2s_error = str(exc.args[0])
    if name.lower().startswith("s2s"):
        raise InputError(f"{s2s_error}; DeAOT variants: {deaot_error.split('known: ', 1)[-1]}")
    raise InputError(f"{deaot_error}; S2S variants: {', '.join(S2S_VARIANTS)}")


def model_family(model: str | nn.Module | DeAOTConfig | S2SConfig) -> str:
    """``"deaot"`` or ``"s2s"``: the family of a variant name, a config or a network."""
    cfg = model_config(model) if isinstance(model, str) else getattr(model, "cfg", model)
    for family, (_, config_class) in FAMILIES.items():
        if isinstance(cfg, config_class):
            return family
    raise InputError(f"not a vosuite model: {type(model).__name__}")


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
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure becomes a one-line input error
        raise InputError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
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

    ``name_or_config``: a variant name (``deaot-t``, ``deaot-s``, ``deaot-b``, ``deaot-l``,
    ``r50-deaot-l``, or one of them + ``-deform``; ``s2s``, ``s2s-dist``, ``s2spp``, or one of them
    + ``-mnv2``) or a :class:`DeAOTConfig` / :class:`S2SConfig`. ``checkpoint``: optional state
    dict (aot-benchmark files for DeAOT; vanilla weights load into ``-deform`` variants). The
    network's ``default_size`` (the internal resolution its weights were trained for) is None.
    """
    cfg = model_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    model = FAMILIES[model_family(cfg)][0](cfg)
    model.default_size = None
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()
