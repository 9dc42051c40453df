"""Clip augmentations on numpy arrays: scale + object-aware crop, flip, colour jitter, affine and elastic motion.

A :class:`Clip` holds frames [N, H, W, 3] float32 RGB in 0..255 and labels [N, H, W] uint8 ids.
Every transform draws its randomness from an explicit ``numpy.random.Generator`` (never the global
RNG) and takes ``per_frame``: False draws one set of parameters for the whole clip (the same
transform on every frame), True draws one set per frame. Label maps always use nearest-neighbour
interpolation, so no new ids appear; pixels brought in from outside the image are background (0)
with AOT's padding colour.

The recipe follows AOT's training pipeline (aot-benchmark ``dataloaders/video_transforms.py``:
``RandomScale`` -> ``BalancedRandomCrop`` -> ``RandomColorJitter`` -> ``RandomHorizontalFlip`` ->
padding ``Resize``), written here without torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")

#: AOT's padding colour for images (``Resize(use_padding=True)``): the ImageNet mean x 255, roughly.
PAD_RGB = (124.0, 116.0, 104.0)
VOID_ID = 255


@dataclass
class Clip:
    """A training clip: frames [N, H, W, 3] float32 RGB (0..255) and labels [N, H, W] uint8 ids."""

    frames: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be [N, H, W, 3], got {self.frames.shape}")
        if self.labels.shape != self.frames.shape[:3]:
            raise ValueError(f"labels {self.labels.shape} do not match frames {self.frames.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def draw_per_frame(
    rng: np.random.Generator, num_frames: int, per_frame: bool, draw: Callable[[np.random.Generator], T]
) -> list[T]:
    """``num_frames`` parameter sets: one draw repeated (per clip) or one draw per frame."""
    if per_frame:
        return [draw(rng) for _ in range(num_frames)]
    value = draw(rng)
    return [value] * num_frames


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------


def compose_affine(
    src_centre: tuple[float, float],
    dst_centre: tuple[float, float],
    angle: float = 0.0,
    scale: float = 1.0,
    shear: float = 0.0,
) -> np.ndarray:
    """The [2, 3] map x -> R(angle) Sh(shear) S(scale) (x - src_centre) + dst_centre (degrees, (x, y))."""
    theta, phi = math.radians(angle), math.radians(shear)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    linear = rotation @ np.array([[1.0, math.tan(phi)], [0.0, 1.0]]) * scale  # [2, 2]
    offset = np.asarray(dst_centre, dtype=np.float64) - linear @ np.asarray(src_centre, dtype=np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)  # [2, 3]


def warp_image(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``image`` ([h, w, 3] float32 or [h, w] uint8) mapped by ``matrix`` onto an (H, W) canvas.

    Outside pixels get :data:`PAD_RGB` (images) or 0 (label maps, when ``nearest``).
    """
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    fill = 0 if nearest else PAD_RGB
    return cv2.warpAffine(
        image, matrix, (size[1], size[0]), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )


def warp_clip(clip: Clip, matrices: np.ndarray) -> Clip:
    """Every frame i of ``clip`` warped by ``matrices[i]`` ([N, 2, 3]), keeping the clip's size."""
    frames = [warp_image(f, m, clip.size) for f, m in zip(clip.frames, matrices, strict=True)]
    labels = [warp_image(l, m, clip.size, nearest=True) for l, m in zip(clip.labels, matrices, strict=True)]
    return Clip(np.stack(frames), np.stack(labels))


def object_pixel_counts(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every id 0..255 in a uint8 label map, [256] int64 (background and void included)."""
    return np.bincount(labels.ravel(), minlength=256)


def has_object(labels: np.ndarray, min_pixels: int) -> bool:
    """Whether some object id (not 0, not void) covers more than ``min_pixels`` pixels."""
    return bool((object_pixel_counts(labels)[1:VOID_ID] > min_pixels).any())


# ---------------------------------------------------------------------------------------------
# Random scale + object-aware crop (AOT RandomScale + BalancedRandomCrop + padding)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropConfig:
    """Random scale and crop.

    Attributes:
        scale_range: random factor on top of the short-edge alignment (AOT DATA_MIN/MAX_SCALE_FACTOR 0.7, 1.3).
        short_edge: the image's short side is first scaled to this (AOT DATA_SHORT_EDGE_LEN 480 for a 465
            crop); None uses the crop's short side.
        max_tries: object-aware retries of the reference window (AOT DATA_MAX_CROP_STEPS).
        min_object_pixels: an object counts as kept by a window above this many pixels (AOT 100).
    """

    scale_range: tuple[float, float] = (0.7, 1.3)
    short_edge: int | None = None
    max_tries: int = 10
    min_object_pixels: int = 100


def _random_offset(rng: np.random.Generator, length: int, window: int) -> int:
    """Top/left of a window: inside the image when it fits, else a negative offset (random padding)."""
    low, high = min(0, length - window), max(0, length - window)
    return int(rng.integers(low, high + 1))


def crop_pad(
    image: np.ndarray, top: int, left: int, size: tuple[int, int], fill: float | tuple[float, ...]
) -> np.ndarray:
    """The (H, W) window at (top, left) of ``image`` ([h, w] or [h, w, C]); outside parts are ``fill``."""
    out = np.empty((size[0], size[1], *image.shape[2:]), dtype=image.dtype)
    out[...] = fill
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + size[0], image.shape[0]), min(left + size[1], image.shape[1])
    if src_bottom > src_top and src_right > src_left:
        out[src_top - top : src_bottom - top, src_left - left : src_right - left] = image[
            src_top:src_bottom, src_left:src_right
        ]
    return out


def _object_aware_window(
    rng: np.random.Generator, labels: np.ndarray, size: tuple[int, int], config: CropConfig
) -> tuple[int, int]:
    """A random window that keeps an object of ``labels`` (> min pixels) when one of ``max_tries`` does."""
    window = (_random_offset(rng, labels.shape[0], size[0]), _random_offset(rng, labels.shape[1], size[1]))
    if not has_object(labels, config.min_object_pixels):
        return window
    for _ in range(config.max_tries - 1):
        if has_object(crop_pad(labels, *window, size, 0), config.min_object_pixels):
            break
        window = (_random_offset(rng, labels.shape[0], size[0]), _random_offset(rng, labels.shape[1], size[1]))
    return window


def _rescale(frame: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame (linear) and labels (nearest) resized by ``factor``."""
    height, width = labels.shape
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return (
        cv2.resize(frame, new_size, interpolation=cv2.INTER_LINEAR),
        cv2.resize(labels, new_size, interpolation=cv2.INTER_NEAREST),
    )


def random_scale_crop(
    clip: Clip,
    rng: np.random.Generator,
    size: tuple[int, int],
    config: CropConfig = CropConfig(),
    per_frame: bool = False,
) -> Clip:
    """Scale (short side to ``config.short_edge`` x a random factor) and crop/pad every frame to ``size``.

    The reference (first) frame's window is object-aware (AOT ``BalancedRandomCrop``: up to
    ``max_tries`` random windows until one keeps an object); with ``per_frame`` every later frame gets
    its own scale and window (camera shake), otherwise all frames share the reference's.
    """
    base = (config.short_edge or min(size)) / min(clip.size)
    factors = draw_per_frame(rng, clip.num_frames, per_frame, lambda r: base * r.uniform(*config.scale_range))
    frames, labels = [], []
    window = (0, 0)
    for index in range(clip.num_frames):
        frame, label = _rescale(clip.frames[index], clip.labels[index], factors[index])
        if index == 0:
            window = _object_aware_window(rng, label, size, config)
        elif per_frame:
            window = (_random_offset(rng, label.shape[0], size[0]), _random_offset(rng, label.shape[1], size[1]))
        frames.append(crop_pad(frame, *window, size, PAD_RGB))
        labels.append(crop_pad(label, *window, size, 0))
    return Clip(np.stack(frames), np.stack(labels))


# ---------------------------------------------------------------------------------------------
# Flip
# ---------------------------------------------------------------------------------------------


def horizontal_flip(clip: Clip, rng: np.random.Generator, prob: float = 0.5, per_frame: bool = False) -> Clip:
    """Mirror frames and labels together with probability ``prob`` (per clip or per frame)."""
    flips = np.array(draw_per_frame(rng, clip.num_frames, per_frame, lambda r: bool(r.random() < prob)))
    frames = np.where(flips[:, None, None, None], clip.frames[:, :, ::-1], clip.frames)
    labels = np.where(flips[:, None, None], clip.labels[:, :, ::-1], clip.labels)
    return Clip(frames, labels)


# ---------------------------------------------------------------------------------------------
# Colour jitter (torchvision ColorJitter semantics, numpy/OpenCV)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JitterConfig:
    """Colour jitter strengths, as AOT's ``RandomColorJitter`` (applied with ``prob``).

    brightness/contrast/saturation factors are drawn in [1 - s, 1 + s]; the hue shift in [-hue, hue]
    (fraction of the colour wheel, at most 0.5). ``per_frame`` draws new factors for every frame.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    prob: float = 0.8
    per_frame: bool = False


@dataclass(frozen=True)
class _JitterDraw:
    apply: bool
    order: tuple[int, ...]
    factors: tuple[float, float, float, float]  # brightness, contrast, saturation, hue shift


def _draw_jitter(rng: np.random.Generator, config: JitterConfig) -> _JitterDraw:
    apply = bool(rng.random() < config.prob)
    order = tuple(int(i) for i in rng.permutation(4))
    strengths = (config.brightness, config.contrast, config.saturation)
    factors = tuple(float(rng.uniform(max(0.0, 1 - s), 1 + s)) for s in strengths)
    hue = float(rng.uniform(-config.hue, config.hue))
    return _JitterDraw(apply, order, (*factors, hue))


def _grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of [H, W, 3] float RGB, [H, W, 1]."""
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def _shift_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of [H, W, 3] float RGB (0..255) by ``shift`` turns."""
    hsv = cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2HSV)  # H in [0, 360)
    hsv[..., 0] = (hsv[..., 0] + 360.0 * shift) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def _blend(rgb: np.ndarray, towards: np.ndarray | float, factor: float) -> np.ndarray:
    """``towards + factor * (rgb - towards)``: factor 1 keeps, 0 gives ``towards``."""
    return (rgb - towards) * factor + towards


def _jitter_frame(rgb: np.ndarray, draw: _JitterDraw) -> np.ndarray:
    """One frame ([H, W, 3] float32) with the drawn adjustments, in the drawn order, clipped to 0..255."""
    if not draw.apply:
        return rgb
    brightness, contrast, saturation, hue = draw.factors
    operations = (
        lambda x: x * brightness,
        lambda x: _blend(x, float(_grey(x).mean()), contrast),
        lambda x: _blend(x, _grey(x), saturation),
        lambda x: _shift_hue(x, hue),
    )
    for index in draw.order:
        rgb = np.clip(operations[index](rgb), 0.0, 255.0).astype(np.float32)
    return rgb


def colour_jitter(
    clip: Clip, rng: np.random.Generator, config: JitterConfig = JitterConfig(), per_frame: bool | None = None
) -> Clip:
    """Brightness/contrast/saturation/hue jitter; labels untouched. ``per_frame`` defaults to ``config.per_frame``."""
    per_frame = config.per_frame if per_frame is None else per_frame
    draws = draw_per_frame(rng, clip.num_frames, per_frame, lambda r: _draw_jitter(r, config))
    frames = np.stack([_jitter_frame(f, d) for f, d in zip(clip.frames, draws, strict=True)])
    return Clip(frames, clip.labels)


# ---------------------------------------------------------------------------------------------
# Affine and elastic motion
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffineConfig:
    """Random affine about the image centre: rotation, translation (fraction of W/H), scale, x-shear.

    The defaults are a small per-frame jitter; AOT's static-image pre-training uses
    ``AffineConfig(degrees=20, translate=0.1, scale=(0.9, 1.1), shear=10)`` (``StaticTrain``).
    """

    degrees: float = 5.0
    translate: float = 0.03
    scale: tuple[float, float] = (0.97, 1.03)
    shear: float = 3.0
    prob: float = 1.0
    per_frame: bool = True


def _motion_mode(rng: np.random.Generator, prob: float, default: bool, per_frame: bool | None) -> bool | None:
    """The ``per_frame`` a motion transform runs with (``default`` unless given), or None when it is skipped."""
    if rng.random() >= prob:
        return None
    return default if per_frame is None else per_frame


def affine_matrix(rng: np.random.Generator, size: tuple[int, int], config: AffineConfig) -> np.ndarray:
    """One random [2, 3] affine for an (H, W) image."""
    height, width = size
    centre = ((width - 1) / 2, (height - 1) / 2)
    angle = rng.uniform(-config.degrees, config.degrees)
    shift = rng.uniform(-config.translate, config.translate, size=2) * (width, height)
    scale = rng.uniform(*config.scale)
    shear = rng.uniform(-config.shear, config.shear)
    return compose_affine(centre, (centre[0] + shift[0], centre[1] + shift[1]), angle, scale, shear)


def affine_matrices(
    rng: np.random.Generator, num_frames: int, size: tuple[int, int], config: AffineConfig, per_frame: bool
) -> np.ndarray:
    """[N, 2, 3] random affines, one per frame or one shared."""
    return np.stack(draw_per_frame(rng, num_frames, per_frame, lambda r: affine_matrix(r, size, config)))


def random_affine(
    clip: Clip, rng: np.random.Generator, config: AffineConfig = AffineConfig(), per_frame: bool | None = None
) -> Clip:
    """Warp frames (bilinear) and labels (nearest) by random affines; ``per_frame`` defaults to the config's."""
    mode = _motion_mode(rng, config.prob, config.per_frame, per_frame)
    if mode is None:
        return clip
    return warp_clip(clip, affine_matrices(rng, clip.num_frames, clip.size, config, mode))


@dataclass(frozen=True)
class ElasticConfig:
    """Smooth random displacement: a ``grid`` x ``grid`` field of offsets up to ``alpha`` pixels, upsampled (cubic)."""

    alpha: float = 4.0
    grid: int = 4
    prob: float = 0.3
    per_frame: bool = True


def _displacement(rng: np.random.Generator, size: tuple[int, int], config: ElasticConfig) -> np.ndarray:
    """A smooth [H, W, 2] float32 offset field (dx, dy) in pixels."""
    coarse = rng.uniform(-config.alpha, config.alpha, size=(config.grid, config.grid, 2)).astype(np.float32)
    return cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def elastic(
    clip: Clip, rng: np.random.Generator, config: ElasticConfig = ElasticConfig(), per_frame: bool | None = None
) -> Clip:
    """Elastic deformation (cv2.remap; labels nearest); ``per_frame`` defaults to the config's."""
    mode = _motion_mode(rng, config.prob, config.per_frame, per_frame)
    if mode is None:
        return clip
    height, width = clip.size
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    fields = draw_per_frame(rng, clip.num_frames, mode, lambda r: _displacement(r, clip.size, config))
    frames, labels = [], []
    for frame, label, field in zip(clip.frames, clip.labels, fields, strict=True):
        map_x, map_y = grid_x + field[..., 0], grid_y + field[..., 1]
        frames.append(cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        labels.append(cv2.remap(label, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT))
    return Clip(np.stack(frames), np.stack(labels))
