"""Generated shapes: objects that are not "salient things", so that a tracker must follow its reference.

DAVIS-2016 has one salient object per video. A network trained on it alone can score well by
segmenting whatever looks most like an object and ignoring the reference mask; such a network
loses a flat-coloured box at once and jumps to a look-alike. Generated clips break that shortcut
(the idea of training on procedurally generated scenes, as FlyingChairs does for optical flow,
Dosovitskiy et al. 2015, Sec. 4):

- objects are rectangles, ellipses or random polygons, filled with a flat colour plus noise, a
  smooth random texture, or a patch of a real frame (so texture alone does not tell them apart);
- each moves along its own smooth path (:func:`~vosuite.training.data.synthetic.object_path`),
  later objects occluding earlier ones;
- the background is either the clip's own video (its objects stay targets) or a generated plain,
  textured or gradient background;
- distractors, labelled background, move through the clip too: shapes of the same kinds, or with
  ``twin_prob`` a look-alike of a target (a copy of one of its cutouts, its colours scaled a little),
  so that appearance alone cannot tell the target from the distractor and the network must use
  where the target was (look-alike distractors are the failure the MOSE benchmark collects,
  Ding et al. 2023, "MOSE: A New Dataset for Video Object Segmentation in Complex Scenes").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from vosuite.datasets.synthetic import smooth_noise
from vosuite.training.data.augment import Clip
from vosuite.training.data.synthetic import Cutout, PasteConfig, cut_object, object_path, paste_objects

#: A source of real-image patches: (rng, (h, w)) -> rgb [h, w, 3] float32, or None.
PatchSource = Callable[[np.random.Generator, tuple[int, int]], "np.ndarray | None"]


@dataclass(frozen=True)
class ShapesConfig:
    """Generated shapes pasted into a clip (module docstring).

    Attributes:
        prob: chance that a clip gets generated shapes.
        max_objects: 1..max target shapes, drawn uniformly.
        max_distractors: 0..max shapes labelled background.
        plain_background_prob: chance that the clip's video is replaced by a generated background.
        twin_prob: chance that a distractor is a look-alike of a target rather than a new shape.
        side: the side of the square a shape is drawn in, pixels (before its path scales it).
        paste: the shapes' sizes and paths.
    """

    prob: float = 0.0
    max_objects: int = 3
    max_distractors: int = 2
    plain_background_prob: float = 0.5
    twin_prob: float = 0.0
    side: int = 96
    paste: PasteConfig = field(default_factory=lambda: PasteConfig(
        prob=1.0, size_range=(0.12, 0.45), max_shift=0.3, max_rotation=30.0, max_scale_change=0.2))


def shape_mask(rng: np.random.Generator, side: int) -> np.ndarray:
    """A rectangle, ellipse or random polygon in a [side, side] bool mask, touching its box's sides."""
    mask = np.zeros((side, side), np.uint8)
    kind = int(rng.integers(3))
    if kind == 0:  # rectangle of aspect 1:3 .. 3:1
        aspect = float(np.exp(rng.uniform(-np.log(3), np.log(3))))
        half_w, half_h = side / 2 * min(1.0, aspect), side / 2 * min(1.0, 1 / aspect)
        cv2.rectangle(mask, (int(side / 2 - half_w), int(side / 2 - half_h)),
                      (int(side / 2 + half_w) - 1, int(side / 2 + half_h) - 1), 1, thickness=-1)
    elif kind == 1:
        axes = (int(side / 2 * rng.uniform(0.4, 1.0)), int(side / 2 * rng.uniform(0.4, 1.0)))
        cv2.ellipse(mask, (side // 2, side // 2), axes, 0.0, 0.0, 360.0, 1, thickness=-1)
    else:  # a star-shaped polygon: random radii at sorted angles
        count = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = side / 2 * rng.uniform(0.4, 1.0, count)
        points = np.stack([side / 2 + radii * np.cos(angles), side / 2 + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)
    return mask.astype(bool)


def smooth_texture(rng: np.random.Generator, size: tuple[int, int], amplitude: float) -> np.ndarray:
    """Smooth zero-mean noise [h, w, 3] float32 of standard deviation ``amplitude``, on 4-16 px cells."""
    return amplitude * smooth_noise(rng, *size, cell=int(rng.integers(4, 17)))


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour [3] float32, uniform in the cube."""
    return rng.uniform(0.0, 255.0, 3).astype(np.float32)


def shape_fill(rng: np.random.Generator, size: tuple[int, int], patches: PatchSource | None) -> np.ndarray:
    """The pixels of a shape [h, w, 3] float32: flat + noise, smooth texture, or a real patch."""
    kind = int(rng.integers(3))
    if kind == 2 and patches is not None:
        patch = patches(rng, size)
        if patch is not None:
            return patch
    base = np.broadcast_to(random_colour(rng), (*size, 3))
    if kind == 0:
        return np.clip(base + rng.uniform(0.0, 20.0) * rng.standard_normal((*size, 3)), 0, 255).astype(np.float32)
    return np.clip(base + smooth_texture(rng, size, rng.uniform(10.0, 50.0)), 0, 255).astype(np.float32)


def shape_cutout(rng: np.random.Generator, side: int, patches: PatchSource | None) -> Cutout:
    """A generated object: its shape's bounding box, filled."""
    mask = shape_mask(rng, side)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    mask = mask[box]
    return Cutout(shape_fill(rng, mask.shape, patches), mask)


def generated_background(rng: np.random.Generator, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """A still background [N, H, W, 3] float32 (plain, textured or a gradient) with per-frame noise."""
    height, width = size
    kind = int(rng.integers(3))
    if kind == 0:
        still = np.broadcast_to(random_colour(rng), (height, width, 3))
    elif kind == 1:
        still = random_colour(rng) + smooth_texture(rng, size, rng.uniform(10.0, 50.0))
    else:
        ramp = np.linspace(0.0, 1.0, height if rng.random() < 0.5 else width, dtype=np.float32)
        ramp = ramp[:, None] if ramp.size == height else ramp[None, :]
        start, end = random_colour(rng), random_colour(rng)
        still = start + (end - start) * np.broadcast_to(ramp, (height, width))[..., None]
    noise = rng.uniform(0.0, 12.0) * rng.standard_normal((num_frames, height, width, 3))
    return np.clip(still[None] + noise, 0, 255).astype(np.float32)


def look_alike(rng: np.random.Generator, cutout: Cutout) -> Cutout:
    """A copy of ``cutout`` with each colour channel scaled by 0.85..1.15."""
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return Cutout(np.clip(cutout.rgb * gain, 0, 255).astype(np.float32), cutout.mask.copy())


def own_cutouts(clip: Clip, obj_num: int) -> list[Cutout]:
    """The clip's objects 1..obj_num as cut from its first frame (those present there)."""
    cutouts = (cut_object(clip.frames[0], clip.labels[0], object_id) for object_id in range(1, obj_num + 1))
    return [cutout for cutout in cutouts if cutout is not None]


def add_shapes(clip: Clip, rng: np.random.Generator, config: ShapesConfig, obj_num: int, max_objects: int,
               patches: PatchSource | None = None) -> tuple[Clip, int]:
    """``clip`` with generated target shapes (ids after ``obj_num``, at most ``max_objects`` in all)
    and distractors, and its highest object id; its video is replaced by a generated background
    with ``plain_background_prob``."""
    if rng.random() < config.plain_background_prob:
        clip = Clip(generated_background(rng, clip.num_frames, clip.size), np.zeros_like(clip.labels))
        obj_num = 0
    distractor_count = int(rng.integers(0, config.max_distractors + 1))
    target_count = max(min(int(rng.integers(1, config.max_objects + 1)), max_objects - obj_num), 0)
    targets = [shape_cutout(rng, config.side, patches) for _ in range(target_count)]
    originals = own_cutouts(clip, obj_num) + targets
    distractors = [
        look_alike(rng, originals[int(rng.integers(len(originals)))])
        if originals and config.twin_prob > 0 and rng.random() < config.twin_prob
        else shape_cutout(rng, config.side, patches)
        for _ in range(distractor_count)
    ]
    paths = [object_path(rng, c, clip.size, clip.num_frames, config.paste) for c in distractors + targets]
    # distractors first (targets may occlude them), pasted as ids above every target, then cleared
    ghost_id = obj_num + 1 + target_count
    clip = paste_objects(clip, distractors, paths[:distractor_count], ghost_id)
    ghosts = (clip.labels >= ghost_id) & (clip.labels < ghost_id + distractor_count)
    clip = Clip(clip.frames, np.where(ghosts, 0, clip.labels).astype(clip.labels.dtype))
    clip = paste_objects(clip, targets, paths[distractor_count:], obj_num + 1)
    return clip, obj_num + target_count
