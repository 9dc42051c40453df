"""A fresh per-video inference core for any network, from the shared options
(:class:`~vosuite.options.InferenceOptions`): each family's builder checks the settings it reads
and refuses the others."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vosuite.errors import InputError
from vosuite.inference.core import InferenceCore, VideoCore
from vosuite.inference.memory import MemoryConfig
from vosuite.inference.preprocess import preprocess_image
from vosuite.options import MERGES, InferenceOptions
from vosuite.registry import FAMILIES

_NOT_GIVEN = InferenceOptions()

def make_core(model: nn.Module, options: InferenceOptions = _NOT_GIVEN, device: str = "cpu",
              size: int | None = None, backend: object | None = None) -> VideoCore:
    """A per-video core of ``model`` (DeAOT, S2S or a training-free tracker) at internal size
    ``size`` (default ``options.size``), its graphs run by ``backend`` (default: the network;
    :mod:`vosuite.inference.backend`); an InputError for a setting the family has no use for,
    and for models that follow no prompts (unsupervised, pre-training)."""
    builder = _BUILDERS.get(model.family)
    if builder is None:
        raise InputError(_no_core_message(model))
    if backend is not None and model.family == "baseline":
        raise InputError(f"--runtime onnx covers the DeAOT and S2S families, not {model.cfg.name}")
    return builder(model, options, size if size is not None else options.size, device, backend)


def preprocess(model: nn.Module, rgb: np.ndarray, size: int | None = None) -> torch.Tensor:
    """One frame (RGB uint8 [H, W, 3]) as the network input of ``model`` [1, 3, h, w]: its core's
    size rule at internal size ``size`` and vosuite's one normalisation."""
    core = make_core(model, size=size)
    return preprocess_image(rgb, core.network_size(*rgb.shape[:2]))


def _deaot_core(model: nn.Module, options: InferenceOptions, size: int | None, device: str,
                backend: object | None) -> VideoCore:
    if options.merge is not None:
        raise InputError(f"--merge applies to S2S models only; {model.cfg.name} merges objects its own way")
    memory = MemoryConfig.for_model(model.cfg, long_term_gap=options.long_term_gap,
                                    max_memory_frames=options.memory_cap)
    return InferenceCore(model, memory, size, device=device, backend=backend)


def _s2s_core(model: nn.Module, options: InferenceOptions, size: int | None, device: str,
              backend: object | None) -> VideoCore:
    from vosuite.inference.s2s import S2SInferenceCore

    given = options.given("long_term_gap", "max_memory_frames")
    if given:
        raise InputError(f"{' and '.join(given)} apply to DeAOT models only; {model.cfg.name} keeps one "
                         "fixed-size recurrent state per object, no frame memory")
    return S2SInferenceCore(model, size, options.merge or MERGES[0], device=device, backend=backend)


def _baseline_core(model: nn.Module, options: InferenceOptions, size: int | None, device: str,
                   backend: None) -> VideoCore:
    from vosuite.inference.baselines import BaselineCore

    if model.cfg.task == "unsupervised":
        raise InputError(f"{model.cfg.name} is an unsupervised baseline (no prompts): run it with `vosuite discover`")
    given = options.given("long_term_gap", "max_memory_frames", "merge")
    if given:
        raise InputError(f"{', '.join(given)} do not apply to {model.cfg.name}, a training-free baseline")
    if model.cfg.kind == "features":
        from vosuite.inference.feature_propagation import FeaturePropagationCore

        return FeaturePropagationCore(model, size, device=device)
    return BaselineCore(model, size, device=device)


def _no_core_message(model: nn.Module) -> str:
    task = getattr(model.cfg, "task", None) or FAMILIES[model.family].task
    if task == "unsupervised":
        return f"{model.cfg.name} is an unsupervised model (no prompts): run it with `vosuite discover`"
    return (f"{model.cfg.name} is a DINO pre-training network, not a tracker: pass its run's final.pt "
            "as bba.dino_checkpoint (or to `vosuite convert dino`)")


_BUILDERS: dict[str, Callable[..., VideoCore]] = {"deaot": _deaot_core, "s2s": _s2s_core, "baseline": _baseline_core}
