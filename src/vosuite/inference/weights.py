"""Finding, loading and converting model weights.

Lookup: ``--checkpoint PATH`` when given; otherwise the weights that ship inside the package,
``vosuite/weights/<model>.pt``. The default model is the shipped student, ``deaot-t-deform``
(its model card: ``vosuite/weights/deaot-t-deform.md``); other variants ship no weights (the error
says how to get some).

A vosuite checkpoint is a plain dict, loaded with ``torch.load(weights_only=True)``::

    {"format": "vosuite", "version": 1,
     "model": {"name": "deaot-t", "family": "deaot",   # or "s2s" (S2SConfig fields); absent: "deaot"
               "config": {...DeAOTConfig fields...}},
     "inference": {"size": 240},   # optional: the internal resolution the weights were trained for
     "state_dict": {...},           # float32, or float16 for shipped weights (cast up on load)
     "int8_weights": {...},         # optional: large weights as int8 (vosuite.io.weight_quantization)
     "shared_weights": {...}}       # optional: frozen tensors kept in another shipped model's file
                                    # (vosuite.io.shared_weights)

``--checkpoint`` also accepts aot-benchmark checkpoints (plain state dicts, ``state_dict`` /
``ema`` wrappers, ``module.`` prefixes); ``vosuite convert aot`` turns them into the format above.
Files written before S2S existed have no ``family``: they are DeAOT checkpoints. Loading is
strict for both families (missing, unexpected or mis-shaped keys are named).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.checkpoint_file import read_checkpoint
from vosuite.io.output import claim_file
from vosuite.io.weight_quantization import quantize_state_dict
from vosuite.models.build import build, extract_state_dict, load_state_dict_strict
from vosuite.models.deaot import DeAOT, DeAOTConfig
from vosuite.models.s2s import S2S, S2SConfig
from vosuite.registry import DEFAULT_MODEL, FAMILIES, WEIGHTS_DIR, family_of, get_spec, verify_weights

CHECKPOINT_FORMAT = "vosuite"
CHECKPOINT_VERSION = 1
#: Family of a checkpoint whose ``model`` entry has no ``family`` (files older than S2S support).
LEGACY_FAMILY = "deaot"

__all__ = ["DEFAULT_MODEL", "WEIGHTS_DIR", "load_model", "save_checkpoint", "half_checkpoint", "convert_aot"]


def canonical_model_name(name: str) -> str:
    """``DeAOT_T`` -> ``deaot-t``, ``S2SPP_MNV2`` -> ``s2spp-mnv2``; an unknown name is an
    InputError listing the known ones."""
    return get_spec(name).name


def packaged_weights(name: str) -> Path:
    """Path of the weights that ship (or would ship) with the package for model ``name``."""
    spec = get_spec(name)
    return spec.weights_path or WEIGHTS_DIR / f"{spec.name}.pt"


def missing_weights_message(name: str) -> str:
    spec = get_spec(name)
    family = FAMILIES[spec.family]
    convert = (f" or convert an aot-benchmark checkpoint (`vosuite convert aot CKPT.pth {name}.pt --model {name}`)"
               if family.converter == "aot" else "")
    recipe = spec.training_recipe()
    train = f"train one (`vosuite train --config {recipe}`, then pass the run's final.pt)" if recipe else ""
    how = " or ".join(part for part in (train, convert.removeprefix(" or ")) if part)
    return (f"no trained weights for {name} ship with vosuite yet ({packaged_weights(name)} is absent): "
            f"{how + ', then ' if how else ''}pass --checkpoint {name}.pt")


def is_vosuite_checkpoint(obj: object) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def config_from_dict(data: Mapping, source: str, cls: type = DeAOTConfig) -> DeAOTConfig | S2SConfig:
    """A config dataclass (:class:`DeAOTConfig` by default, or :class:`S2SConfig`) from its saved
    fields (unknown fields are an error, missing ones default)."""
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


def load_model(model: str | None = None, checkpoint: str | Path | None = None) -> DeAOT | S2S:
    """See :func:`_load_model`; the network's random initialisation (overwritten by the weights)
    runs on a forked RNG, so loading leaves the caller's torch RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        return _load_model(model, checkpoint)


def _load_model(model: str | None = None, checkpoint: str | Path | None = None) -> DeAOT | S2S:
    spec = get_spec(model or DEFAULT_MODEL)
    if not spec.trained:  # training-free: propagate-features reads its backbone from checkpoint
        from vosuite.models.baseline import build_tracker

        return build_tracker(spec.name, checkpoint)
    """The network with weights: from ``checkpoint`` (vosuite format, any family; aot-benchmark or
    plain state dicts) or the packaged weights of ``model``. A vosuite checkpoint carries its
    family and config; ``model``, if given, must name the same variant. A plain state dict is
    loaded (strictly) into ``model``, default the default model."""
    path = verify_weights(get_spec(model or DEFAULT_MODEL)) if checkpoint is None else Path(checkpoint)
    obj = read_checkpoint(path)
    if is_vosuite_checkpoint(obj):
        info = obj.get("model")
        if not isinstance(info, Mapping) or not isinstance(info.get("config"), Mapping):
            raise InputError(f"{path}: vosuite checkpoint without a model config")
        family = info.get("family", LEGACY_FAMILY)
        if family not in FAMILIES:
            raise InputError(f"{path}: unknown model family {family!r} (known: {', '.join(FAMILIES)}); "
                             "upgrade vosuite")
        network, config_class = FAMILIES[family].network(), FAMILIES[family].config_class()
        cfg = config_from_dict(info["config"], str(path), config_class)
        if model is not None and get_spec(model).network_name != cfg.name:
            raise InputError(f"{path} holds {cfg.name} weights, not {get_spec(model).network_name} "
                             "(drop --model or pass the matching checkpoint)")
        net = network(cfg)
        packed = "int8_weights" in obj or "shared_weights" in obj
        state = extract_state_dict(obj if packed else obj.get("state_dict"), str(path))
        load_state_dict_strict(net, state, str(path))
        net.default_size = _inference_size(obj.get("inference"), path)
        return net.eval()
    return build(canonical_model_name(model or DEFAULT_MODEL), path)  # aot-benchmark / plain state dict


def _inference_size(info: object, path: Path) -> int | None:
    """The checkpoint's ``inference.size`` (None when absent)."""
    if info is None:
        return None
    size = info.get("size") if isinstance(info, Mapping) else "bad"
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise InputError(f"{path}: inference.size must be a positive integer, not {size!r}")
    return size


def save_checkpoint(model: DeAOT | S2S, out: str | Path, inference_size: int | None = None,
                    dtype: torch.dtype | None = None, int8: bool = False, int8_keep: tuple[str, ...] = (),
                    share_from: str | None = None, share_prefixes: tuple[str, ...] = ()) -> Path:
    """Write ``model`` as a vosuite checkpoint, atomically. ``inference_size``: the internal
    resolution the weights were trained for (the default ``--size`` of whoever loads them);
    ``dtype``: cast floating tensors (``torch.float16`` halves a shipped file); ``int8``: store
    convolution and linear weights as int8 per output channel, the rest float16
    (:mod:`vosuite.io.weight_quantization`; halves a float16 file again) but for the tensors
    whose names start with a prefix in ``int8_keep``; ``share_from``: the tensors under
    ``share_prefixes`` are not stored but taken from that registered model's packaged weights when
    loading (:mod:`vosuite.io.shared_weights`; they must equal them exactly)."""
    out = Path(out)
    size = inference_size if inference_size is not None else getattr(model, "default_size", None)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {"name": model.cfg.name, "family": family_of(model).name, "config": dataclasses.asdict(model.cfg)},
        "inference": {"size": size},
    }
    state = model.state_dict()
    if share_from is not None:
        from vosuite.io.shared_weights import split_shared

        state, payload["shared_weights"] = split_shared(state, share_from, share_prefixes)
    payload["state_dict"] = {k: _cast(v.detach().clone(), dtype) for k, v in state.items()}
    if int8:  # quantised from the model's own (not the cast) values
        payload["state_dict"], payload["int8_weights"] = quantize_state_dict(state, int8_keep)
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return out


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def half_checkpoint(checkpoint: str | Path, out: str | Path, inference_size: int | None = None,
                    overwrite: bool = False, int8: bool = False, int8_keep: tuple[str, ...] = (),
                    share_from: str | None = None, share_prefixes: tuple[str, ...] = ()) -> Path:
    """A vosuite checkpoint's float16 copy at ``out`` (the form shipped weights take), with
    ``inference_size`` recorded when given (else the checkpoint's); ``int8``: the large weights
    as int8 but those under the ``int8_keep`` prefixes; ``share_from`` / ``share_prefixes``: see
    :func:`save_checkpoint`."""
    if inference_size is not None and inference_size <= 0:
        raise InputError(f"--size {inference_size}: must be a positive number of pixels")
    src, out = Path(checkpoint), Path(out)
    claim_file(out, overwrite=overwrite, inputs=(src,), option="OUT")
    if not is_vosuite_checkpoint(read_checkpoint(src)):
        raise InputError(f"{src} is not a vosuite checkpoint (convert it first: `vosuite convert aot`)")
    return save_checkpoint(load_model(checkpoint=src), out, inference_size=inference_size, dtype=torch.float16,
                           int8=int8, int8_keep=int8_keep, share_from=share_from, share_prefixes=share_prefixes)


@dataclass(frozen=True)
class ConversionReport:
    model: str
    tensors: int
    numbers: int
    out: Path


def convert_aot(checkpoint: str | Path, out: str | Path, model: str = DEFAULT_MODEL,
                overwrite: bool = False) -> ConversionReport:
    """aot-benchmark checkpoint (state dict, ``state_dict`` / ``ema`` wrappers, ``module.``
    prefixes) -> clean vosuite checkpoint at ``out``. Missing, unexpected or mis-shaped keys are
    an InputError naming them."""
    src, out = Path(checkpoint), Path(out)
    claim_file(out, overwrite=overwrite, inputs=(src,), option="OUT")
    name = canonical_model_name(model)
    if FAMILIES[get_spec(name).family].converter != "aot":
        raise InputError(f"`convert aot` reads aot-benchmark DeAOT checkpoints; {name} is not a DeAOT variant")
    obj = read_checkpoint(src)
    if is_vosuite_checkpoint(obj):
        raise InputError(f"{src} is already a vosuite checkpoint")
    if not extract_state_dict(obj, str(src)):
        raise InputError(f"{src}: the checkpoint holds no tensors")
    del obj
    try:
        net = build(name, src)  # strict key check (see vosuite.models.build)
    except InputError as error:
        raise InputError(f"{error} (is --model {name} the checkpoint's variant?)") from None
    save_checkpoint(net, out)
    own = net.state_dict()
    return ConversionReport(model=name, tensors=len(own), numbers=sum(v.numel() for v in own.values()),
                            out=out)

