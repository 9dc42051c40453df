"""A generated clip with exact ground truth: textured objects moving over a textured background.

It needs no download, so the demo and the tests run anywhere. The clip is written in the generic
layout (``JPEGImages/<name>/*.jpg``, ``Annotations/<name>/*.png``) that ``open_dataset("generic")``
reads, and it is a pure function of its arguments (seeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vosuite.io.atomic import atomic_path
from vosuite.io.masks import write_mask


@dataclass(frozen=True)
class SyntheticClipConfig:
    name: str = "shapes"
    num_frames: int = 40
    height: int = 240
    width: int = 320
    num_objects: int = 2
    seed: int = 0


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int = 8) -> np.ndarray:
    """Smooth unit-scale noise [H, W, 3] float32: normal values on a grid of ``cell``-pixel cells,
    resized cubically."""
    noise = rng.normal(0.0, 1.0, size=(height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """Smooth random texture around an RGB base colour, [H, W, 3] float32."""
    return np.clip(base[None, None, :] + 28.0 * smooth_noise(rng, height, width), 0, 255)


def _object_pose(config: SyntheticClipConfig, index: int, frame: int) -> tuple[float, float, float]:
    """Centre (x, y) and rotation (degrees) of object ``index`` at ``frame``: a smooth, periodic path."""
    phase = 2 * math.pi * frame / config.num_frames
    spread = 0.4 * index / max(config.num_objects - 1, 1)
    center_x = config.width * (0.3 + spread) + 0.12 * config.width * math.sin(phase + index)
    center_y = config.height * 0.5 + 0.2 * config.height * math.cos(phase + 2 * index)
    angle = 30.0 * index + 60.0 * frame / config.num_frames
    return center_x, center_y, angle


def _object_axes(config: SyntheticClipConfig, index: int) -> tuple[int, int]:
    return int(config.width * (0.10 + 0.03 * index)), int(config.height * (0.16 - 0.03 * index))


def _place_rigidly(patch: np.ndarray, pose: tuple[float, float, float], height: int, width: int) -> np.ndarray:
    """Warp an object-centred patch to ``pose``, so the texture moves with the object's outline."""
    center_x, center_y, angle = pose
    patch_h, patch_w = patch.shape[:2]
    transform = cv2.getRotationMatrix2D((patch_w / 2, patch_h / 2), -angle, 1.0)  # [2, 3]
    transform[:, 2] += (center_x - patch_w / 2, center_y - patch_h / 2)
    return cv2.warpAffine(patch, transform, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _object_mask(config: SyntheticClipConfig, index: int, frame: int) -> np.ndarray:
    """The ellipse of object ``index`` at ``frame`` as a boolean [H, W] mask."""
    center_x, center_y, angle = _object_pose(config, index, frame)
    mask = np.zeros((config.height, config.width), np.uint8)
    cv2.ellipse(mask, (round(center_x), round(center_y)), _object_axes(config, index), angle, 0, 360, 1, thickness=-1)
    return mask.astype(bool)


def render_clip(config: SyntheticClipConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames ([H, W, 3] uint8 RGB) and label maps ([H, W] uint8, ids 1..num_objects).

    Objects are drawn in id order, so a higher id occludes a lower one where they overlap.
    """
    rng = np.random.default_rng(config.seed)
    background = _texture(rng, config.height, config.width, np.array([70.0, 85.0, 70.0]))
    colours = [np.array([235.0, 120.0, 90.0]), np.array([140.0, 170.0, 240.0]), np.array([240.0, 220.0, 90.0])]
    patch_size = 2 * max(max(_object_axes(config, i)) for i in range(config.num_objects)) + 16
    patches = [_texture(rng, patch_size, patch_size, colours[i % len(colours)]) for i in range(config.num_objects)]
    frames, labels = [], []
    for frame in range(config.num_frames):
        image = background.copy()
        label = np.zeros((config.height, config.width), np.uint8)
        for index in range(config.num_objects):
            mask = _object_mask(config, index, frame)
            texture = _place_rigidly(patches[index], _object_pose(config, index, frame), config.height, config.width)
            image[mask] = texture[mask]
            label[mask] = index + 1
        frames.append(image.astype(np.uint8))
        labels.append(label)
    return frames, labels


def write_clip(root: str | Path, config: SyntheticClipConfig | None = None) -> Path:
    """Write the clip under ``root`` in the generic layout; returns ``root``."""
    config = config or SyntheticClipConfig()
    root = Path(root)
    frames, labels = render_clip(config)
    for index, (rgb, label) in enumerate(zip(frames, labels, strict=True)):
        frame_path = root / "JPEGImages" / config.name / f"{index:05d}.jpg"
        with atomic_path(frame_path) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_mask(root / "Annotations" / config.name / f"{index:05d}.png", label)
    return root
