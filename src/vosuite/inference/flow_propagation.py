"""A training-free baseline: carry the previous label map along dense optical flow.

For every pixel of frame t, Farnebäck flow from frame t to frame t-1 says where it came from; the
label there (nearest neighbour) is its new label. It is what the demo runs when no trained model is
available, and a floor that any learned method should beat.
"""

from __future__ import annotations

import cv2
import numpy as np


class FlowPropagator:
    """``step(frame, mask=None) -> labels``: the first call needs the first frame's mask."""

    def __init__(self) -> None:
        self.previous_gray: np.ndarray | None = None
        self.previous_labels: np.ndarray | None = None

    def step(self, frame_rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        gray = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
        if mask is not None:
            labels = mask.astype(np.uint8)
        elif self.previous_gray is None or self.previous_labels is None:
            raise ValueError("the first step needs a mask")
        else:
            labels = self._warp(gray)
        self.previous_gray, self.previous_labels = gray, labels
        return labels

    def _warp(self, gray: np.ndarray) -> np.ndarray:
        flow = cv2.calcOpticalFlowFarneback(gray, self.previous_gray, None, pyr_scale=0.5, levels=3,
                                            winsize=21, iterations=3, poly_n=7, poly_sigma=1.5, flags=0)
        height, width = gray.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        return cv2.remap(self.previous_labels, grid_x + flow[..., 0], grid_y + flow[..., 1],
                         interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
