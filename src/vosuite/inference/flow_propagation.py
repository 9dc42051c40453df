"""Training-free baselines' motion: carry a label map along dense optical flow.

For every pixel of frame t, the flow from frame t to frame t-1 says where it came from; the label
there (nearest neighbour) is its new label (backward warping, so every pixel gets exactly one
label and no holes open). Two flow estimators from OpenCV:

* ``"farneback"``: Farnebäck's polynomial-expansion flow (G. Farnebäck, SCIA 2003), pyramid of 3
  levels, window 21, 3 iterations, poly_n 7, sigma 1.5;
* ``"dis"``: Dense Inverse Search (Kroeger et al., ECCV 2016), OpenCV's MEDIUM preset.

They are floors that any learned method should beat (:mod:`vosuite.inference.baselines` makes
them trackers behind ``--model flow`` / ``flow-dis``).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Flow estimators by name.
FLOW_METHODS = ("farneback", "dis")


def backward_flow(gray: np.ndarray, previous_gray: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Flow [H, W, 2] (dx, dy) from ``gray`` (frame t) to ``previous_gray`` (frame t-1), uint8 images."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(gray, previous_gray, None, pyr_scale=0.5, levels=3, winsize=21,
                                            iterations=3, poly_n=7, poly_sigma=1.5, flags=0)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray, previous_gray, None)
    raise ValueError(f"unknown flow method {method!r}; known: {', '.join(FLOW_METHODS)}")


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``labels`` [H, W] of frame t-1 moved to frame t along the backward ``flow`` (nearest; outside: 0)."""
    height, width = labels.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(labels, grid_x + flow[..., 0], grid_y + flow[..., 1], interpolation=cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
