"""The per-video record every dataset yields, and the mask-reading rule that goes with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosuite.io.masks import binarize_0_255, object_ids, read_mask

MaskReader = Callable[[Path], np.ndarray]


def read_binary_0_255(path: Path) -> np.ndarray:
    """DAVIS-2016 ground truth: 0/255 grayscale -> id 1 where > 127 (see the official evaluator)."""
    return binarize_0_255(read_mask(path))


@dataclass
class VideoRecord:
    """One video of a dataset.

    Attributes:
        name: the video (sequence) name.
        frame_names: every frame's name without extension, in temporal order.
        frame_paths: the image file of every frame (empty when the frames come from ``video_file``).
        annotation_paths: frame name -> mask file, for the annotated frames only, in temporal order.
        read_labels: turns a mask file into an [H, W] id map (0 = background, 255 = void).
        video_file: a video container to decode instead of ``frame_paths``.
        first_frame_of_object: object id -> name of the first annotated frame it appears in,
            when the dataset states it (YouTube-VOS ``meta.json``); otherwise filled on demand by
            :meth:`object_first_frames`.
    """

    name: str
    frame_names: list[str]
    frame_paths: list[Path]
    annotation_paths: dict[str, Path]
    read_labels: MaskReader = read_mask
    video_file: Path | None = None
    first_frame_of_object: dict[int, str] = field(default_factory=dict)

    @property
    def annotated_frames(self) -> list[str]:
        """Names of the annotated frames, in temporal order."""
        return list(self.annotation_paths)

    def labels(self, frame_name: str) -> np.ndarray:
        """The id map of an annotated frame."""
        return self.read_labels(self.annotation_paths[frame_name])

    def object_first_frames(self) -> dict[int, str]:
        """Object id -> first annotated frame where it appears (reads masks if not given)."""
        if not self.first_frame_of_object:
            for frame_name in self.annotation_paths:
                for object_id in object_ids(self.labels(frame_name)):
                    self.first_frame_of_object.setdefault(object_id, frame_name)
        return dict(self.first_frame_of_object)
