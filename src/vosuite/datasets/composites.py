"""A multi-object check set made from single-object videos: each clip is one video with the objects of
others pasted into its frames, 1 to 5 objects a clip, occluding each other.

Arxiv 2401.13937 plots accuracy against the number of objects (its Fig. 1(b)) on real multi-object
data; DAVIS-2016 has one object a video, so this set is **synthetic**: object k + 1 of a clip is
the annotated object of another video, scaled by a factor drawn in ``scale`` and shifted by an
offset that drifts linearly over the clip, pasted over what is already there (later objects
occlude earlier ones; the base video's own object is object 1). The pasted object moves as in its
own video plus the drift. Every frame has its label map (generic layout: ``JPEGImages/<clip>/``,
``Annotations/<clip>/``), and every object is visible in the first frame. A clip is a function of
(``seed``, object count, clip index): the set is generated once and identically everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.frames import read_image_rgb
from vosuite.io.masks import ids_from_binary_0_255, write_mask

#: Fewest pixels each object keeps in a clip's composed first frame (clips are drawn again until so).
MIN_FIRST_FRAME_PIXELS = 64


@dataclass(frozen=True)
class CompositeConfig:
    """What :func:`write_composites` makes: ``clips_per_count`` clips for each object count in
    ``counts``, of ``frames`` frames at ``height`` x ``width``."""

    counts: tuple[int, ...] = (1, 2, 3, 4, 5)
    clips_per_count: int = 3
    frames: int = 30
    height: int = 240
    width: int = 427
    scale: tuple[float, float] = (0.4, 0.7)  # a pasted object's size against its own frame
    drift: float = 0.3  # the largest drift over the clip, as a share of the frame's side
    seed: int = 0


@dataclass(frozen=True)
class _Placement:
    video: VideoRecord
    scale: float
    start: tuple[float, float]  # top-left offset (y, x) in pixels at frame 0
    velocity: tuple[float, float]  # pixels a frame


def clip_name(count: int, index: int) -> str:
    return f"objects{count}-{index}"


def write_composites(videos: Sequence[VideoRecord], out: str | Path, config: CompositeConfig = CompositeConfig()
                     ) -> list[str]:
    """Write the set under ``out`` (generic layout); returns the clip names. ``videos``: annotated
    single-object videos (DAVIS-2016 style masks), at least 2 when a count exceeds 1."""
    if not videos:
        raise InputError("the composite set needs at least one annotated video")
    names = []
    for count in config.counts:
        for index in range(config.clips_per_count):
            rng = np.random.default_rng([config.seed, count, index])
            base, placements = _draw(videos, count, rng, config)
            _write_clip(Path(out), clip_name(count, index), base, placements, config)
            names.append(clip_name(count, index))
    return names


def _draw(videos: Sequence[VideoRecord], count: int, rng: np.random.Generator, config: CompositeConfig,
          attempts: int = 50) -> tuple[VideoRecord, list[_Placement]]:
    """A base video and ``count - 1`` placements of other videos' objects, every object keeping at
    least :data:`MIN_FIRST_FRAME_PIXELS` pixels in the composed first frame."""
    for _ in range(attempts):
        base = videos[int(rng.integers(len(videos)))]
        others = [v for v in videos if v.name != base.name] or list(videos)
        donors = rng.choice(len(others), size=count - 1, replace=count - 1 > len(others))
        placements = [_place(others[int(donor)], rng, config) for donor in donors]
        first = _compose(base, placements, 0, config)[1]
        if all(int((first == k).sum()) >= MIN_FIRST_FRAME_PIXELS for k in range(1, count + 1)):
            return base, placements
    raise InputError(f"no placement of {count} objects keeps each visible in the first frame")


def _place(video: VideoRecord, rng: np.random.Generator, config: CompositeConfig) -> _Placement:
    scale = float(rng.uniform(*config.scale))
    room = (config.height * (1 - scale), config.width * (1 - scale))
    start = (float(rng.uniform(0, room[0])), float(rng.uniform(0, room[1])))
    side = config.drift * np.array([config.height, config.width]) / max(config.frames - 1, 1)
    velocity = tuple(float(v) for v in rng.uniform(-side, side))
    return _Placement(video, scale, start, velocity)


def _frame(video: VideoRecord, t: int, config: CompositeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frame t of a video (the last one past its end) and its 0/1 object mask, at the set's size."""
    index = min(t, len(video.frame_names) - 1)
    name = video.frame_names[index]
    if name not in video.annotation_paths:
        raise InputError(f"{video.name}: frame {name} has no annotation (the composite set needs every frame's)")
    rgb = cv2.resize(read_image_rgb(video.frame_paths[index]), (config.width, config.height),
                     interpolation=cv2.INTER_AREA)
    mask = (ids_from_binary_0_255(video.labels(name)) == 1).astype(np.uint8)
    return rgb, cv2.resize(mask, (config.width, config.height), interpolation=cv2.INTER_NEAREST)


def _placed(placement: _Placement, t: int, config: CompositeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The donor's frame t and mask, scaled and shifted onto the clip's canvas (outside: mask 0)."""
    rgb, mask = _frame(placement.video, t, config)
    y = placement.start[0] + placement.velocity[0] * t
    x = placement.start[1] + placement.velocity[1] * t
    matrix = np.float32([[placement.scale, 0, x], [0, placement.scale, y]])
    size = (config.width, config.height)
    return (cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR),
            cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST, borderValue=0))


def _compose(base: VideoRecord, placements: list[_Placement], t: int, config: CompositeConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    """Frame t of a clip: RGB [H, W, 3] and ids [H, W] (the base object 1, pasted objects 2, 3, ...)."""
    rgb, labels = _frame(base, t, config)
    for k, placement in enumerate(placements):
        donor_rgb, donor_mask = _placed(placement, t, config)
        inside = donor_mask > 0
        rgb[inside] = donor_rgb[inside]
        labels[inside] = k + 2
    return rgb, labels


def _write_clip(out: Path, name: str, base: VideoRecord, placements: list[_Placement],
                config: CompositeConfig) -> None:
    for t in range(config.frames):
        rgb, labels = _compose(base, placements, t, config)
        with atomic_path(out / "JPEGImages" / name / f"{t:05d}.jpg") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_mask(out / "Annotations" / name / f"{t:05d}.png", labels)
