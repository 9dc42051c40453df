"""Validation during training, in memory: predictions go straight into the evaluator's Python API
(:meth:`~vosuite.metrics.evaluator.Evaluator.evaluate_arrays`), frame by frame, nothing is written,
and the numbers equal ``vosuite infer`` + ``vosuite eval`` on the same videos (tested).

The method names the task (:attr:`~vosuite.training.methods.base.Method.validation_task`):

* ``"semi"``: the model's inference core (:mod:`vosuite.registry`) follows the first annotated
  frame's objects (DAVIS) or each object from its first annotated frame (other datasets), at
  ``val.size``, exactly as :class:`~vosuite.segment.Segmenter.infer` does;
* ``"unsupervised"``: the method's :meth:`~vosuite.training.methods.base.Method.predict_video`
  gives the label maps, scored with Hungarian matching of proposals to objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from vosuite.datasets.base import VideoRecord
from vosuite.datasets.registry import open_dataset
from vosuite.errors import InputError
from vosuite.inference.cores import make_core
from vosuite.inference.propagate import propagate
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.training.methods.base import VALIDATION_TASKS, Method


def validation_videos(val: Any) -> list[VideoRecord]:
    """The videos of a ``val`` section: its split, or the listed subset of it."""
    dataset = open_dataset(val.dataset, val.root, val.split)
    if not val.videos:
        return list(dataset)
    known = set(dataset.videos())
    missing = [name for name in val.videos if name not in known]
    if missing:
        raise InputError(f"val.videos: {', '.join(missing)} not in {val.root} ({val.split or 'all videos'})")
    return [dataset.video(name) for name in val.videos]


def semi_supervised_predictions(model: nn.Module, video: VideoRecord, size: int | None, first_frame_only: bool,
                                device: torch.device | str = "cpu") -> Iterator[tuple[str, np.ndarray]]:
    """(frame name, label map) of a video followed from its annotations by the model's core."""
    from vosuite.inference.prompts import dataset_video_frames, video_prompts

    core = make_core(model, device=device, size=size if size is not None else getattr(model, "default_size", None))
    for index, labels in propagate(core, dataset_video_frames(video), video_prompts(video, first_frame_only)):
        yield video.frame_names[index], labels


def validate(method: Method, model: nn.Module, val: Any, device: torch.device | str = "cpu") -> dict[str, float]:
    """Global scores (``J&F-Mean``, ...) of ``model`` on the ``val`` videos for the method's task."""
    return score_model(model, val, method.validation_task, method.predict_video, device)


def score_model(model: nn.Module, val: Any, task: str = "semi",
                predict_video: Callable[[nn.Module, VideoRecord], Iterator[tuple[str, np.ndarray]]] | None = None,
                device: torch.device | str = "cpu") -> dict[str, float]:
    """Global scores of ``model`` on the videos of ``val`` (``dataset``, ``root``, ``split``,
    ``videos``, ``size``): semi-supervised with the model's inference core, or ``unsupervised``
    with ``predict_video(model, video)``."""
    if task not in VALIDATION_TASKS:
        raise InputError(f"unknown validation task {task!r}; known: {', '.join(VALIDATION_TASKS)}")
    evaluator = Evaluator(EvaluationConfig(task=task, workers=1))
    first_frame_only = val.dataset.lower().startswith("davis")
    if task == "semi":
        def predictions(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
            return semi_supervised_predictions(model, video, val.size, first_frame_only, device)
    else:
        def predictions(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
            return predict_video(model, video)
    result = evaluator.evaluate_arrays(validation_videos(val), predictions)
    return {key: float(value) for key, value in result.global_scores().items()}


__all__ = ["score_model", "semi_supervised_predictions", "validate", "validation_videos"]
