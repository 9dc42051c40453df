"""Pseudo-objects: reference masks made without a human, from a classical segmentation of a frame.

For the fully label-free distillation mode (``distill.reference_masks: pseudo`` or ``teacher``;
vosuite's reading of arXiv 2401.13937, whose student is trained "in a self-supervised fashion":
the paper's own source of reference masks is unknown, so this is a documented assumption).

The segmentation is SLIC-style (Achanta et al. 2012, "SLIC Superpixels", Sec. 3): k-means on
CIELAB colour plus image position, position weighted by ``compactness``, here on a coarse grid
with few clusters so that each cluster is a region rather than a superpixel. A region's
connected components are the candidate objects. A candidate is kept when its area is between
``min_area`` and ``max_area`` of the frame and at most ``max_border`` of its pixels lie on the
frame's border (a region hugging the border is more likely background, the "boundary prior" of
saliency work, e.g. Wei et al. 2012, "Geodesic saliency using background priors"). Up to
``max_objects`` of the kept candidates, drawn at random weighted by area, become objects 1..K.
Every choice comes from the caller's numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2


@dataclass(frozen=True)
class PseudoObjectConfig:
    """The classical segmentation's settings (assumptions, see the module docstring)."""

    regions: int = 6  # k-means clusters
    compactness: float = 1.0  # weight of position (0..1 of the frame) against Lab colour (0..1)
    grid: int = 48  # the longer side of the coarse grid k-means runs on
    min_area: float = 0.01  # a candidate's area, as a fraction of the frame
    max_area: float = 0.4
    max_border: float = 0.1  # the largest fraction of a candidate's pixels on the frame's border
    max_objects: int = 2
    sharpness: float = 4.0  # candidates are drawn with probability ~ saliency ** sharpness
    iterations: int = 10  # k-means iterations

    def __post_init__(self) -> None:
        if self.regions < 2 or self.max_objects < 1 or not 0 < self.min_area < self.max_area <= 1:
            raise ValueError("need regions >= 2, max_objects >= 1 and 0 < min_area < max_area <= 1")


def region_map(rgb: np.ndarray, config: PseudoObjectConfig, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """k-means regions of ``rgb`` ([H, W, 3] uint8 or float 0..255) on the coarse grid: ([h, w]
    int regions, [h, w, 3] Lab colour in 0..1)."""
    height, width = rgb.shape[:2]
    scale = config.grid / max(height, width)
    h, w = max(2, round(height * scale)), max(2, round(width * scale))
    small = cv2.resize(np.clip(rgb, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float64) / 255.0  # [h, w, 3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    position = np.stack([ys / max(h - 1, 1), xs / max(w - 1, 1)], -1) * config.compactness
    features = np.concatenate([lab, position], -1).reshape(-1, 5)
    _, assignment = kmeans2(features, config.regions, iter=config.iterations, minit="++",
                            seed=np.random.default_rng(rng.integers(1 << 32)))
    return assignment.reshape(h, w), lab


def candidate_objects(regions: np.ndarray, lab: np.ndarray, config: PseudoObjectConfig
                      ) -> tuple[list[np.ndarray], np.ndarray]:
    """Connected components of every region that pass the area and border tests ([h, w] bools),
    and their saliency: the Lab distance of a component's mean colour to the nearest mean colour
    of the border's regions (background-contrast saliency with the boundary prior)."""
    area = regions.size
    border = np.zeros(regions.shape, bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    border_colours = np.stack([lab[(regions == r) & border].mean(0) for r in np.unique(regions[border])])
    candidates, saliency = [], []
    for region in np.unique(regions):
        components, count = ndimage.label(regions == region)
        for index in range(1, count + 1):
            component = components == index
            size = int(component.sum())
            if not config.min_area * area <= size <= config.max_area * area:
                continue
            if (component & border).sum() > config.max_border * size:
                continue
            candidates.append(component)
            saliency.append(np.linalg.norm(border_colours - lab[component].mean(0), axis=1).min())
    return candidates, np.asarray(saliency, np.float64)


def pseudo_objects(rgb: np.ndarray, rng: np.random.Generator,
                   config: PseudoObjectConfig = PseudoObjectConfig()) -> np.ndarray:
    """A label map [H, W] uint8 (0 background, objects 1..K, K <= ``max_objects``) for ``rgb``.

    When no candidate passes the tests, the object is the central region (the one covering the
    frame's centre), so every frame yields at least one object."""
    height, width = rgb.shape[:2]
    regions, lab = region_map(rgb, config, rng)
    candidates, saliency = candidate_objects(regions, lab, config)
    if not candidates:
        h, w = regions.shape
        components, _ = ndimage.label(regions == regions[h // 2, w // 2])
        candidates, saliency = [components == components[h // 2, w // 2]], np.ones(1)
    weights = saliency ** config.sharpness + 1e-12
    count = min(config.max_objects, len(candidates))
    chosen = rng.choice(len(candidates), size=count, replace=False, p=weights / weights.sum())
    labels = np.zeros(regions.shape, np.uint8)
    for object_id, index in enumerate(sorted(chosen), start=1):
        labels[candidates[index] & (labels == 0)] = object_id
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
