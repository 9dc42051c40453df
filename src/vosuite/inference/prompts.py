"""Prompts of semi-supervised VOS: the masks that say which objects to follow, read and fitted to
the frames (``vosuite segment --mask / --masks-dir``, the annotations of a dataset video).

A mask file holds object ids: palette / grey / RGB-palette PNGs, or a 0/255 mask (one object,
:func:`~vosuite.io.masks.ids_from_binary_0_255`); ids must be <= 254 (255 = void). A mask of
another size is resized (nearest) when its aspect ratio matches the frames' within 1 %.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.inference.core import MAX_OBJECT_ID
from vosuite.inference.propagate import Prompt
from vosuite.io.frames import open_frames, read_image_rgb
from vosuite.io.masks import ids_from_binary_0_255, object_ids, read_mask

#: Masks whose aspect ratio is within this fraction of the frames' are resized (nearest).
ASPECT_TOLERANCE = 0.01


def fit_mask(mask: np.ndarray, frame_size: tuple[int, int], path: Path | str) -> np.ndarray:
    """``mask`` at ``frame_size``: unchanged, resized (nearest) when the aspect ratios agree within
    1 %, else an InputError naming the file."""
    height, width = frame_size
    if tuple(mask.shape) == (height, width):
        return mask
    mh, mw = mask.shape
    if abs((mw / mh) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise InputError(f"{path}: mask is {mw}x{mh} but the frames are {width}x{height} "
                         "(aspect ratios differ; cannot resize)")
    resized = cv2.resize(mask.astype(np.uint16 if mask.max(initial=0) > 255 else np.uint8), (width, height),
                         interpolation=cv2.INTER_NEAREST)
    return resized.astype(mask.dtype)


def read_prompt_mask(path: str | os.PathLike, frame_size: tuple[int, int], require_object: bool = True,
                     reader: Callable[[Path], np.ndarray] = read_mask) -> np.ndarray:
    """Read a mask of object ids for frames of ``frame_size`` (H, W): palette / grey / RGB ids,
    a 0/255 mask as object 1; resized (nearest) if needed; ids must be <= 254 (255 = void)."""
    path = Path(path)
    mask = ids_from_binary_0_255(reader(path))  # a 0/255 mask: one object
    ids = object_ids(mask)
    if ids and max(ids) > MAX_OBJECT_ID:
        raise InputError(f"{path}: object id {max(ids)} above {MAX_OBJECT_ID} (palette PNGs hold 1..254)")
    if require_object and not ids:
        raise InputError(f"{path}: the mask holds no object")
    return fit_mask(mask, frame_size, path).astype(np.uint8)


def lazy_mask(path: Path, reader: Callable[[Path], np.ndarray] = read_mask,
                   ids: list[int] | None = None) -> Callable[[tuple[int, int]], np.ndarray]:
        """A prompt that reads ``path`` when its frame comes (ids outside ``ids`` cleared)."""
        def read(frame_size: tuple[int, int]) -> np.ndarray:
            mask = read_prompt_mask(path, frame_size, require_object=False, reader=reader)
            return mask if ids is None else np.where(np.isin(mask, ids), mask, 0).astype(np.uint8)
        return read



def video_prompts(video: VideoRecord, first_frame_only: bool) -> dict[int, Prompt]:
    """The prompts of a dataset video (frame index -> a lazily read mask): the first annotated
    frame's objects (``first_frame_only``, the DAVIS protocol), or every object from the first
    frame that annotates it (YouTube-VOS)."""
    if not video.annotation_paths:
        raise InputError(f"video {video.name!r}: no annotated object to follow")
    position = {name: index for index, name in enumerate(video.frame_names)}
    if first_frame_only:
        first = video.annotated_frames[0]
        return {position[first]: lazy_mask(video.annotation_paths[first], video.read_labels)}
    starts: dict[str, list[int]] = {}
    for object_id, frame in video.object_first_frames().items():
        if frame not in video.annotation_paths:
            raise InputError(f"video {video.name!r}: object {object_id} starts at frame {frame!r}, "
                             "which has no annotation")
        starts.setdefault(frame, []).append(object_id)
    return {position[frame]: lazy_mask(video.annotation_paths[frame], video.read_labels, sorted(ids))
            for frame, ids in starts.items()}


def dataset_video_frames(video: VideoRecord) -> Iterator[np.ndarray]:
    """RGB frames of a dataset video, one decoded frame at a time."""
    if video.video_file is not None:
        for frame, _ in zip(open_frames(video.video_file), video.frame_names, strict=False):
            yield frame.rgb
        return
    for path in video.frame_paths:
        yield read_image_rgb(path)
