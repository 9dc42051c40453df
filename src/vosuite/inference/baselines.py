"""Per-video state of the training-free baselines, with the :class:`~vosuite.inference.core.VideoCore`
API (``step(rgb, mask)``, ``labels``), so ``vosuite segment / infer --model flow | flow-dis |
copy-first`` and ``Segmenter`` run them like any model.

* **flow** (``flow``: Farnebäck, ``flow-dis``: DIS): the previous label map is warped to the new
  frame along the backward optical flow (:mod:`vosuite.inference.flow_propagation`). With
  ``size``, flow is computed on frames shrunk so the short side is <= size and scaled back up.
* **copy-first** (zero motion): the label map stays what the last mask gave (the first frame's
  mask repeated, with objects added by later masks).

Masks given on a later frame overwrite the propagated labels where they hold objects, as for the
learned models. Probabilities are the one-hot of the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from vosuite.inference.core import VideoCore
from vosuite.inference.flow_propagation import backward_flow, warp_labels
from vosuite.models.baseline import TrainingFreeTracker


class BaselineCore(VideoCore):
    """One video's state of a training-free tracker (module docstring)."""

    def __init__(self, model: TrainingFreeTracker, size: int | None = None, device: str | torch.device = "cpu") -> None:
        self.model = model
        super().__init__(size, device=device)

    def reset(self) -> None:
        self.previous_gray: np.ndarray | None = None
        self.internal_labels: np.ndarray | None = None  # [H, W] internal ids 0..K
        super().reset()

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is None or min(height, width) <= self.size:
            return height, width
        scale = self.size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def step(self, frame: np.ndarray, mask: np.ndarray | None = None,
             object_ids: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`VideoCore.step`."""
        rgb, internal = self.accept_frame(frame, mask, object_ids)
        gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        if self.input_size != self.frame_size:
            gray = cv2.resize(gray, (self.input_size[1], self.input_size[0]), interpolation=cv2.INTER_AREA)
        labels = self.internal_labels
        if labels is not None and self.model.cfg.kind == "flow":
            labels = self._warp(labels, gray)
        if internal is not None:
            labels = internal.astype(np.uint8) if labels is None else np.where(internal > 0, internal, labels)
        self.previous_gray = gray
        if labels is None:
            return self.background()
        self.internal_labels = labels.astype(np.uint8)
        self._label = torch.from_numpy(self.internal_labels.astype(np.int64))[None, None]
        ids = torch.arange(len(self.object_ids) + 1).view(-1, 1, 1)
        return (self._label[0] == ids).float()

    def _warp(self, labels: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """The previous internal labels moved along the flow from this frame to the previous one."""
        flow = backward_flow(gray, self.previous_gray, self.model.cfg.flow)  # at the input size
        height, width = self.frame_size
        if flow.shape[:2] != (height, width):
            scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) * scale
        return warp_labels(labels, flow)
