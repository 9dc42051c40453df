"""DINO's multi-crop views of unlabelled frames (Caron et al. 2021, arXiv 2104.14294, Sec. 3.1 and
``DataAugmentationDINO`` of facebookresearch/dino).

Every frame of every video of the source is a sample. Each sample gives two global views (random
resized crops of ``global_scale`` of the frame's area, ``global_size`` pixels) and
``local_crops`` local views (``local_scale``, ``local_size`` pixels), each flipped with
probability 0.5, colour-jittered (0.4, 0.4, 0.2, 0.1 with probability 0.8), turned grey with
probability 0.2 and blurred (sigma 0.1..2) with probability 1.0 (first global), 0.1 (second
global) or 0.5 (local); the second global view is solarised with probability 0.2. Views are
normalised with the ImageNet mean and deviation. DINO's sizes are 224 and 96 pixels; on a CPU
the defaults here are smaller (``global_size`` 96, ``local_size`` 48; both multiples of the patch).
Every random choice comes from a numpy Generator seeded by (seed, epoch, index).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.inference.preprocess import normalize_rgb
from vosuite.io.frames import read_image_rgb
from vosuite.training.data.augment import Clip, JitterConfig, colour_jitter
from vosuite.training.data.seeded import SeededDataset


@dataclass(frozen=True)
class MultiCropConfig:
    """DINO's augmentation (module docstring); sizes in pixels, scales as fractions of the area."""

    global_size: int = 96
    local_size: int = 48
    local_crops: int = 6  # DINO: 8 for ViT-S/16 at 224 / 96
    global_scale: tuple[float, float] = (0.4, 1.0)  # DINO: global_crops_scale
    local_scale: tuple[float, float] = (0.05, 0.4)  # DINO: local_crops_scale
    jitter: JitterConfig = JitterConfig()
    grey_prob: float = 0.2
    blur_probs: tuple[float, float, float] = (1.0, 0.1, 0.5)  # first global, second global, local
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.2  # the second global view only
    samples_per_epoch: int | None = None
    seed: int = 0


def random_resized_crop(rgb: np.ndarray, rng: np.random.Generator, size: int, scale: tuple[float, float],
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """torchvision's ``RandomResizedCrop``: 10 tries at an area in ``scale`` and a log-uniform aspect
    ratio in ``ratio``, else the centre crop of the clamped ratio; resized bicubic to size x size."""
    height, width = rgb.shape[:2]
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            break
    else:
        aspect = width / height
        if aspect < ratio[0]:
            w, h = width, round(width / ratio[0])
        elif aspect > ratio[1]:
            h, w = height, round(height * ratio[1])
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    crop = rgb[top:top + h, left:left + w]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)


def _view(rgb: np.ndarray, rng: np.random.Generator, config: MultiCropConfig, size: int,
          scale: tuple[float, float], blur_prob: float, solarize_prob: float) -> np.ndarray:
    """One augmented view, float32 RGB 0..255 [size, size, 3]."""
    view = random_resized_crop(rgb, rng, size, scale).astype(np.float32)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    view = colour_jitter(Clip(view[None], np.zeros((1, size, size), np.uint8)), rng, config.jitter).frames[0]
    if rng.random() < config.grey_prob:
        view = np.repeat(view @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(size, size, 3)
    if rng.random() < blur_prob:
        sigma = rng.uniform(*config.blur_sigma)
        view = cv2.GaussianBlur(np.ascontiguousarray(view), (0, 0), sigmaX=sigma)
    if rng.random() < solarize_prob:
        view = np.where(view >= 128, 255 - view, view)
    return np.clip(view, 0, 255).astype(np.float32)


class MultiCropDataset(SeededDataset):
    """Sample ``i``: a frame of the source's videos, as DINO views; each epoch visits every frame
    once in its own seeded order (:meth:`SeededDataset.shuffled`), as DINO's sampler shuffles.
    (In video order, a batch held 32 consecutive frames of one video, and the centre, a running
    mean over a few batches, followed the video: what was left to match was within-video noise.)"""

    def __init__(self, source: Iterable[VideoRecord], config: MultiCropConfig = MultiCropConfig()) -> None:
        self.config = config
        self.frames = [path for record in source for path in record.frame_paths]
        if not self.frames:
            raise InputError("no frame images to draw DINO views from")
        super().__init__(len(self.frames), config.samples_per_epoch, config.seed)

    def frame_of(self, index: int) -> Path:
        """The frame whose views are sample ``index`` of the current epoch."""
        return self.frames[self.shuffled(index)]

    def __getitem__(self, index: int) -> dict[str, object]:
        config = self.config
        rng = self.generator(index)
        frame = self.frame_of(index)
        rgb = read_image_rgb(frame)
        first_blur, second_blur, local_blur = config.blur_probs
        views = [_view(rgb, rng, config, config.global_size, config.global_scale, first_blur, 0.0),
                 _view(rgb, rng, config, config.global_size, config.global_scale, second_blur, config.solarize_prob)]
        views += [_view(rgb, rng, config, config.local_size, config.local_scale, local_blur, 0.0)
                  for _ in range(config.local_crops)]
        crops = [torch.from_numpy(np.ascontiguousarray(normalize_rgb(v).transpose(2, 0, 1), dtype=np.float32))
                 for v in views]
        return {"crops": crops, "frame": str(frame)}


def collate_crops(samples: list[dict[str, object]]) -> dict[str, object]:
    """Crops as a list over views of [B, 3, s, s] (globals first), frames and indices as lists."""
    views = len(samples[0]["crops"])
    return {"crops": [torch.stack([s["crops"][v] for s in samples]) for v in range(views)],
            "frame": [s["frame"] for s in samples], "index": [int(s["index"]) for s in samples]}
