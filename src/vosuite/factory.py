"""The one place that builds networks and loads their weights (SAM2's ``build_sam``).

    import vosuite
    net = vosuite.create_model()                            # the default model, shipped weights
    net = vosuite.create_model("deaot-l", weights=None)     # random initialisation
    net = vosuite.create_model(weights="run/final.pt")      # the model the checkpoint names
    net = vosuite.create_model("deaot-t", weights="aot.pth")  # an aot-benchmark state dict

Names come from :mod:`vosuite.registry` (registered by :mod:`vosuite.models`, imported here),
weight formats from :mod:`vosuite.checkpoints`. Loading is strict: missing, unexpected or
mis-shaped keys are named. A deformable variant (``*-deform``) also loads vanilla weights: its
offset-network keys, and only those, may be missing; they keep their zero-offset initialisation
and a warning names them. A network's ``default_size`` is the internal resolution its weights
were trained for (the checkpoint's ``inference.size``; None when unknown).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import vosuite.models  # noqa: F401 - registers every family and model name
from vosuite.checkpoints.files import read_checkpoint
from vosuite.checkpoints.shipped import shipped_path, verified
from vosuite.checkpoints.state_dict import extract_state_dict, load_state_dict_strict, preview
from vosuite.checkpoints.vosuite_format import (
    StorageOptions,
    config_from_dict,
    is_vosuite_checkpoint,
    parse_checkpoint,
    write_checkpoint,
)
from vosuite.errors import InputError
from vosuite.options import DEFAULT_MODEL
from vosuite.registry import FAMILIES, Family, ModelSpec, get_spec, list_models

__all__ = ["DEFAULT_MODEL", "create_model", "list_models", "model_config", "save_model", "weights_file"]

Weights = str | Path | None


_NO_STORAGE = StorageOptions()

def create_model(name: str | Any | None = None, weights: Weights = "default", device: str = "cpu") -> nn.Module:
    """A network in eval mode on ``device``; loading leaves the caller's torch RNG state as it was.

    Args:
        name: a registered model name (:func:`list_models`), or a family's config dataclass (a
            variant with overrides); None: the model a vosuite checkpoint ``weights`` names, else
            :data:`~vosuite.options.DEFAULT_MODEL`.
        weights: ``"default"``: the weights that ship for ``name`` (an InputError saying how to get
            some when none ship); a path: a vosuite checkpoint (any family), an aot-benchmark or
            plain state dict; None: random initialisation. Training-free baselines take none but
            ``propagate-features``: its backbone (default: the default model's encoder).
        device: ``"cpu"``, ``"cuda"``, ...
    """
    with torch.random.fork_rng(devices=[]):
        model = _create(name, weights)
    if any(not p.is_meta for p in model.parameters()):  # built under torch.device("meta"): no data to move
        model = model.to(device)
    return model.eval()


def _create(name: str | Any | None, weights: Weights) -> nn.Module:
    if name is not None and not isinstance(name, str):  # a config
        model = _network(_family_of_config(name), name)
        if weights not in (None, "default"):
            _load_into(model, Path(weights))
        return model
    if weights is None:
        spec = get_spec(name or DEFAULT_MODEL)
        return _network(FAMILIES[spec.family], _config(spec))
    if not get_spec(name or DEFAULT_MODEL).trained:
        return _training_free(get_spec(name), weights)
    path = weights_file(name or DEFAULT_MODEL) if weights == "default" else Path(weights)
    obj = read_checkpoint(path)
    if is_vosuite_checkpoint(obj):
        return _from_vosuite_checkpoint(obj, path, name)
    spec = get_spec(name or DEFAULT_MODEL)
    model = _network(FAMILIES[spec.family], _config(spec))
    _load_state(model, extract_state_dict(obj, str(path)), path)
    return model


def weights_file(name: str) -> Path:
    """The shipped weights file of model ``name``, checked against its sha256; an InputError saying
    how to get weights when none ship."""
    spec = get_spec(name)
    path = shipped_path(spec.weights) if spec.weights else None
    if path is None or not path.is_file():
        raise InputError(missing_weights_message(spec))
    return verified(path, spec.sha256)


def ships_weights(spec: ModelSpec) -> bool:
    return spec.weights is not None and shipped_path(spec.weights).is_file()


def missing_weights_message(spec: ModelSpec) -> str:
    """What to do when no weights ship for ``spec``: train them, or convert another code's."""
    family = FAMILIES[spec.family]
    name = spec.name
    convert = (f"convert an aot-benchmark checkpoint (`vosuite convert aot CKPT.pth {name}.pt --model {name}`)"
               if family.converter == "aot" else "")
    recipe = spec.training_recipe()
    train = f"train one (`vosuite train --config {recipe}`, then pass the run's final.pt)" if recipe else ""
    how = " or ".join(part for part in (train, convert) if part)
    where = shipped_path(spec.weights or f"{name}.pt")
    return (f"no trained weights for {name} ship with vosuite yet ({where} is absent): "
            f"{how + ', then ' if how else ''}pass --checkpoint {name}.pt")


def _import(path: str) -> Any:
    """``module:attribute``, imported."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def model_config(name: str) -> Any:
    """The config dataclass of a registered model's network."""
    return _config(get_spec(name))


def _config(spec: ModelSpec) -> Any:
    return _import(FAMILIES[spec.family].config)(spec.architecture)


def _family_of_config(config: Any) -> Family:
    for family in FAMILIES.values():
        if isinstance(config, _import(family.config_class)):
            return family
    raise InputError(f"not a vosuite model config: {type(config).__name__}")


def _network(family: Family, config: Any) -> nn.Module:
    """A randomly initialised network of ``config``, its ``default_size`` unknown."""
    model = _import(family.network)(config)
    model.default_size = None
    return model.eval()


def _from_vosuite_checkpoint(obj: Mapping, path: Path, name: str | None) -> nn.Module:
    """The network a vosuite checkpoint describes; ``name``, if given, must name the same network."""
    checkpoint = parse_checkpoint(obj, str(path))
    family = FAMILIES.get(checkpoint.family)
    if family is None:
        raise InputError(f"{path}: unknown model family {checkpoint.family!r} (known: {', '.join(FAMILIES)}); "
                         "upgrade vosuite")
    config = config_from_dict(checkpoint.config, str(path), _import(family.config_class))
    if name is not None and get_spec(name).architecture != config.name:
        raise InputError(f"{path} holds {config.name} weights, not {get_spec(name).architecture} "
                         "(drop --model or pass the matching checkpoint)")
    model = _network(family, config)
    load_state_dict_strict(model, checkpoint.state, str(path))
    model.default_size = checkpoint.size
    return model


def _load_into(model: nn.Module, path: Path) -> None:
    """A state-dict file (any layout, :func:`~vosuite.checkpoints.state_dict.extract_state_dict`)
    into ``model``."""
    _load_state(model, extract_state_dict(read_checkpoint(path), str(path)), path)


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strict loading; a deformable model's offset networks may be missing (warned)."""
    skipped = load_state_dict_strict(model, state, str(path),
                                     allow_missing=getattr(model, "offset_parameter_names", list)())
    if skipped:
        warnings.warn(f"{path} has no offset-network weights for {model.cfg.name} ({len(skipped)} tensors: "
                      f"{preview(skipped, 2)}); they stay zero-initialised, i.e. zero offsets", stacklevel=3)


def _training_free(spec: ModelSpec, weights: Weights) -> nn.Module:
    """A training-free tracker; ``propagate-features`` with the backbone ``weights`` names."""
    from vosuite.models.baseline import TrainingFreeTracker, get_baseline_config

    config = get_baseline_config(spec.architecture)
    given = weights not in (None, "default")
    if config.kind != "features":
        if given:
            raise InputError(f"--checkpoint: {config.name} is a training-free baseline; it takes no weights")
        return TrainingFreeTracker(config)
    return TrainingFreeTracker(config, feature_backbone(Path(weights) if given else None))


def feature_backbone(path: Path | None = None) -> nn.Module:
    """The frozen backbone of ``propagate-features`` (:class:`~vosuite.models.feature_backbone.FeatureBackbone`)
    from ``path``: a vosuite DeAOT checkpoint (its encoder), a training run's ``last.pt`` (the live
    ``encoder.*``), a ``vosuite convert dino`` backbone or a ``vosuite convert imagenet`` encoder;
    None: the default model's encoder. Anything else is a one-line InputError."""
    from vosuite.checkpoints.backbone import read_backbone
    from vosuite.models.feature_backbone import FeatureBackbone

    if path is None:
        return FeatureBackbone(create_model(DEFAULT_MODEL).encoder, f"{DEFAULT_MODEL} encoder")
    obj = read_checkpoint(path)
    if is_vosuite_checkpoint(obj) and obj.get("model", {}).get("family") == "deaot":
        return FeatureBackbone(create_model(weights=path).encoder, f"{path} (DeAOT encoder)")
    return FeatureBackbone(*read_backbone(obj, path))


def save_model(model: nn.Module, out: str | Path, inference_size: int | None = None,
               storage: StorageOptions = _NO_STORAGE) -> Path:
    """Write ``model`` as a vosuite checkpoint, atomically. ``inference_size``: the internal
    resolution its weights were trained for (default: ``model.default_size``); ``storage``: dtype,
    int8 and shared tensors (:class:`~vosuite.checkpoints.vosuite_format.StorageOptions`)."""
    size = inference_size if inference_size is not None else getattr(model, "default_size", None)
    return write_checkpoint(out, model.family, model.cfg, model.state_dict(), size, storage)
