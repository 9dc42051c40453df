"""Training-free unsupervised proposals: the floors of unsupervised VOS.

No mask is given and nothing is learned; each frame gets one proposal (id 1):

* **centred ellipse** (``ellipse``): the ellipse centred in the frame whose semi-axes are
  ``axes`` of the frame's half-sides. A photographer's centre bias, the classic floor of
  saliency benchmarks (the "centre prior", e.g. Judd et al. 2009). The default axes were fitted
  on DAVIS-2016 *train* (best mean J, ``benchmarks/unsupervised_baselines.py --fit``).
* **motion saliency** (``motion``): pixels that move differently from the camera. DIS flow (Kroeger et al. 2016)
  from each frame to its predecessor (frame 0: to frame 1) at ``size`` pixels (short side), minus
  the dominant motion, an affine model fitted with RANSAC to a grid of flow vectors
  (cv2.estimateAffine2D); the residual magnitude is thresholded with Otsu's method (at least
  ``min_motion`` pixels), opened and closed, and the connected components of at least
  ``keep_ratio`` of the largest one, holes filled, are the proposal. A frame where nothing moves more than
  ``min_motion`` keeps the previous frame's proposal (the first such frames: the ellipse).
  The classic motion-segmentation floor of unsupervised VOS (e.g. the "flow magnitude"
  baselines of Perazzi et al. 2016, DAVIS paper, Sec. 5; the residual after a global motion
  model as in Papazoglou and Ferrari 2013).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from vosuite.inference.flow_propagation import backward_flow

#: Default ellipse semi-axes as fractions of the half-width and half-height (fitted on DAVIS-16 train).
ELLIPSE_AXES = (0.4, 0.5)


def centred_ellipse(height: int, width: int, axes: tuple[float, float] = ELLIPSE_AXES) -> np.ndarray:
    """[H, W] uint8: 1 inside the centred ellipse with semi-axes ``axes`` x (W / 2, H / 2)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ry, rx = max(axes[1] * height / 2, 0.5), max(axes[0] * width / 2, 0.5)
    return (((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0).astype(np.uint8)


@dataclass(frozen=True)
class MotionSaliencyConfig:
    """Settings of the motion-saliency proposal (see the module docstring)."""

    size: int = 240  # short side the flow runs at
    flow: str = "dis"  # DIS: J 0.517 on DAVIS-16 train against 0.324 with Farneback (sharper edges)
    grid_step: int = 8  # pixels between the flow vectors the affine motion is fitted to
    ransac_threshold: float = 1.0  # pixels
    min_motion: float = 0.5  # pixels of residual motion below which nothing moves
    keep_ratio: float = 0.2  # components of at least this share of the largest one are kept
    morphology: int = 5  # opening / closing kernel (pixels at ``size``)
    threshold_scale: float = 1.0  # times Otsu's threshold
    fill_holes: bool = True  # a textureless interior shows little flow: fill what the moving outline encloses


def residual_motion(flow: np.ndarray, config: MotionSaliencyConfig) -> np.ndarray:
    """|flow - dominant affine motion| [H, W] float32 (pixels)."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height:config.grid_step, 0:width:config.grid_step]
    points = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    moved = points + flow[ys.ravel(), xs.ravel()]
    affine, _ = cv2.estimateAffine2D(points, moved, method=cv2.RANSAC,
                                     ransacReprojThreshold=config.ransac_threshold)
    if affine is None:  # degenerate: the median translation
        affine = np.array([[1, 0, np.median(flow[..., 0])], [0, 1, np.median(flow[..., 1])]], np.float64)
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    dominant_x = affine[0, 0] * grid_x + affine[0, 1] * grid_y + affine[0, 2] - grid_x
    dominant_y = affine[1, 0] * grid_x + affine[1, 1] * grid_y + affine[1, 2] - grid_y
    return np.hypot(flow[..., 0] - dominant_x, flow[..., 1] - dominant_y).astype(np.float32)


def moving_region(residual: np.ndarray, config: MotionSaliencyConfig) -> np.ndarray | None:
    """The proposal [H, W] uint8 of one residual-motion map, or None where nothing moves."""
    peak = float(residual.max())
    if peak < config.min_motion:
        return None
    scaled = np.clip(residual / peak * 255.0, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(config.threshold_scale * otsu / 255.0 * peak, config.min_motion)
    mask = (residual >= threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.morphology, config.morphology))
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= config.keep_ratio * areas.max())
    region = np.isin(components, keep)
    return (ndimage.binary_fill_holes(region) if config.fill_holes else region).astype(np.uint8)


def _gray(rgb: np.ndarray, size: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def motion_saliency(frames: Iterable[np.ndarray], config: MotionSaliencyConfig = MotionSaliencyConfig()
                    ) -> Iterator[np.ndarray]:
    """One proposal [H, W] uint8 (0/1) per RGB frame [H, W, 3], streamed: three frames held at a time.

    Frame t's residual motion is the smaller of its residuals towards frames t-1 and t+1 (one
    of them at the ends): the region an object leaves behind moves in one direction only, the
    object itself in both."""
    grays: list[np.ndarray] = []
    size, previous_mask = None, None

    def proposal(residual: np.ndarray) -> np.ndarray:
        nonlocal previous_mask
        region = moving_region(residual, config)
        if region is not None:
            previous_mask = cv2.resize(region, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return previous_mask if previous_mask is not None else centred_ellipse(*size)

    def towards(index: int, other: int) -> np.ndarray:
        return residual_motion(backward_flow(grays[index], grays[other], config.flow), config)

    count = 0
    for rgb in frames:
        size, count = size or rgb.shape[:2], count + 1
        grays.append(_gray(rgb, config.size))
        if count == 2:
            yield proposal(towards(0, 1))  # frame 0: towards frame 1 only
        if len(grays) == 3:
            yield proposal(np.minimum(towards(1, 0), towards(1, 2)))
            grays.pop(0)
    if count == 1:
        yield centred_ellipse(*size)  # a single frame: nothing to compare with
    elif count >= 2:
        yield proposal(towards(len(grays) - 1, len(grays) - 2))  # the last frame: towards its predecessor
