"""The Method API: what the method-agnostic :class:`~vosuite.training.engine.Trainer` needs of a method.

    class MyMethod(Method):
        name = "mine"                      # YAML: `method: mine`, its options under `mine:`
        Options = MyOptions                # a dataclass: the method's typed config section
        validation_task = "semi"           # or "unsupervised" (then override predict_video)

        def build_model(self) -> nn.Module: ...
        def training_step(self, model, batch, step) -> tuple[torch.Tensor, dict[str, float]]: ...

and one line in :data:`vosuite.training.methods.METHODS`. Optional hooks:

* :meth:`Method.build_data`: the training samples (default: labelled clips of ``config.data``;
  :class:`~vosuite.training.data.unlabelled.UnlabelledClipDataset` gives clips or plain frames of
  any folder of videos, without masks);
* :meth:`Method.auxiliary_modules`: frozen networks the loss needs (a teacher). The engine puts
  them in eval mode on the device with gradients off; they are never wrapped by DDP, never
  averaged by the EMA and never saved into checkpoints;
* :meth:`Method.freezable_keys` / :meth:`Method.freeze_active`: parameters whose rate is 0 in a
  phase of training (DeAOT's ID bank in sequential training);
* :meth:`Method.predict_video`: label maps of one validation video (unsupervised methods).

Validation (:mod:`vosuite.training.validation`) runs in memory through the evaluator's Python API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError

#: Validation tasks a method can name.
VALIDATION_TASKS = ("semi", "unsupervised")


@dataclass
class NoOptions:
    """A method without options of its own."""


@dataclass(frozen=True)
class TrainingData:
    """What a method trains on: a map-style dataset (sample ``i`` a pure function of (seed, epoch, i),
    with ``set_epoch``) and the function that stacks samples into a batch."""

    dataset: Any
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]


class Method:
    """Base class of training methods (see the module docstring)."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    validation_task: ClassVar[str] = "semi"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.options = config.method_options if config.method_options is not None else self.Options()

    # -- required ---------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The network to train, in train mode."""
        raise NotImplementedError

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, logs as plain floats) of one batch."""
        raise NotImplementedError

    # -- optional ---------------------------------------------------------------------------------
    def build_data(self, model: nn.Module) -> TrainingData:
        """Labelled clips of ``config.data`` (:class:`~vosuite.training.data.ClipDataset`)."""
        from vosuite.training.data.clips import collate_clips, labelled_clips

        return TrainingData(labelled_clips(self.config, getattr(getattr(model, "cfg", None), "max_obj_num", 10)),
                            collate_clips)

    def auxiliary_modules(self) -> dict[str, nn.Module]:
        """Frozen networks the loss reads (e.g. ``{"teacher": net}``); built once, before training."""
        return {}

    def freezable_keys(self) -> list[str]:
        return []

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimiser step (``step``: the one just taken), before the EMA update:
        e.g. DINO's momentum teacher follows its student here."""

    def freeze_active(self, step: int) -> bool:
        return False

    def predict_video(self, model: nn.Module, video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        """(frame name, label map) of every frame of a validation video: required for unsupervised
        validation; semi-supervised validation follows the first frame's objects with the model's
        inference core."""
        raise NotImplementedError(f"method {self.name} names no unsupervised predictor")


def check_encoder_norm(config: Any) -> None:
    """``model.encoder_norm`` is ``frozen`` or ``batch``; trainable norms need a fully trained encoder."""
    norm = config.model.encoder_norm
    if norm not in ("frozen", "batch"):
        raise InputError(f"model.encoder_norm {norm!r}: use 'frozen' or 'batch'")
    if norm == "batch" and config.model.encoder_freeze_at > 0:
        raise InputError("model.encoder_norm=batch trains every encoder norm: set model.encoder_freeze_at=0")
