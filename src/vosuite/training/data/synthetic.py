"""Synthetic multi-object clips: objects cut from other videos pasted over a clip, each with its own motion.

DAVIS-2016 has one object per video, so a model trained on it alone never learns to tell objects
apart. AOT merges a second clip into the first (``_merge_sample`` in aot-benchmark
``dataloaders/train_datasets.py``, with probability DATA_DYNAMIC_MERGE_PROB = 0.3); here single
objects are cut out (with their masks) and moved along a smooth affine path of their own, so the
pasted ids move independently of the clip's object. Objects are pasted in id order: a later
object overwrites the frame and the labels under it (occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vosuite.training.data.augment import Clip, compose_affine, warp_image


@dataclass(frozen=True)
class PasteConfig:
    """Pasting objects cut from other videos.

    Attributes:
        prob: chance that a clip gets pasted objects (AOT DATA_DYNAMIC_MERGE_PROB).
        max_objects: at most this many objects pasted (1..max drawn uniformly).
        size_range: the object's longer side as a fraction of the clip's shorter side.
        max_shift: largest displacement over the clip, as a fraction of the clip's shorter side.
        max_rotation: largest rotation over the clip, degrees.
        max_scale_change: largest relative scale change over the clip.
        min_cutout_pixels: a donor object smaller than this is not used.
    """

    prob: float = 0.3
    max_objects: int = 2
    size_range: tuple[float, float] = (0.15, 0.45)
    max_shift: float = 0.3
    max_rotation: float = 20.0
    max_scale_change: float = 0.2
    min_cutout_pixels: int = 50


@dataclass
class Cutout:
    """An object's pixels: rgb [h, w, 3] float32 and mask [h, w] bool, cropped to its bounding box."""

    rgb: np.ndarray
    mask: np.ndarray

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) of the box centre."""
        return (self.mask.shape[1] - 1) / 2, (self.mask.shape[0] - 1) / 2


def cut_object(rgb: np.ndarray, labels: np.ndarray, object_id: int) -> Cutout | None:
    """The bounding-box cutout of ``object_id`` in one frame ([H, W, 3], [H, W]); None if absent."""
    mask = labels == object_id
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return Cutout(rgb[box].astype(np.float32), mask[box])


def object_path(
    rng: np.random.Generator, cutout: Cutout, size: tuple[int, int], num_frames: int, config: PasteConfig
) -> np.ndarray:
    """[N, 2, 3] affines placing the cutout on an (H, W) clip along a smooth path.

    Start and end poses (centre, rotation, scale) are drawn, and frame i interpolates them
    linearly at t = i / (N - 1): constant velocity, rotation and zoom.
    """
    height, width = size
    short = min(height, width)
    scale0 = rng.uniform(*config.size_range) * short / max(cutout.mask.shape)
    scale1 = scale0 * (1 + rng.uniform(-config.max_scale_change, config.max_scale_change))
    angle0 = rng.uniform(-30.0, 30.0)
    angle1 = angle0 + rng.uniform(-config.max_rotation, config.max_rotation)
    start = rng.uniform((0.15 * width, 0.15 * height), (0.85 * width, 0.85 * height))
    heading = rng.uniform(0.0, 2 * np.pi)
    distance = rng.uniform(0.3, 1.0) * config.max_shift * short
    end = start + distance * np.array([np.cos(heading), np.sin(heading)])
    matrices = []
    for t in np.linspace(0.0, 1.0, num_frames):
        centre = (1 - t) * start + t * end
        angle = (1 - t) * angle0 + t * angle1
        scale = (1 - t) * scale0 + t * scale1
        matrices.append(compose_affine(cutout.centre, (float(centre[0]), float(centre[1])), angle, scale))
    return np.stack(matrices)


def paste_objects(clip: Clip, cutouts: list[Cutout], paths: list[np.ndarray], first_id: int) -> Clip:
    """``clip`` with cutout k drawn along ``paths[k]`` ([N, 2, 3]) as id ``first_id + k``.

    Later cutouts overwrite earlier ones and the clip's own objects (occlusion order = list order).
    """
    frames, labels = clip.frames.copy(), clip.labels.copy()
    for offset, (cutout, path) in enumerate(zip(cutouts, paths, strict=True)):
        mask_u8 = cutout.mask.astype(np.uint8)
        for index in range(clip.num_frames):
            rgb = warp_image(cutout.rgb, path[index], clip.size)
            inside = warp_image(mask_u8, path[index], clip.size, nearest=True).astype(bool)
            frames[index][inside] = rgb[inside]
            labels[index][inside] = first_id + offset
    return Clip(frames, labels)
