"""Frame and mask preprocessing of the aot-benchmark evaluation path.

Images: RGB uint8 -> float32 -> (if needed) ``cv2.resize`` with INTER_CUBIC to the network input
size -> ``/255`` in float32 -> minus ImageNet mean, divided by std, each step evaluated in
float64 and rounded to float32 (numpy's in-place arithmetic with a float64 tuple) -> [1,3,H,W].

Network input size (``MultiRestrictSize``): shrink so the long edge is <= ``max_long_edge`` (and
the short edge <= ``max_short_edge`` if set), scale, truncate to int, then snap each side ``n``
with ``(n - 1) % 16 != 0`` to ``round((n - 1) / 16) * 16 + 1`` (align_corners models).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: aot-benchmark's default evaluation long-edge limit: 800 * 1.3.
DEFAULT_MAX_LONG_EDGE = 1040.0


def network_input_size(height: int, width: int, max_long_edge: float | None = DEFAULT_MAX_LONG_EDGE,
                       max_short_edge: float | None = None, scale: float = 1.0, stride: int = 16,
                       align_corners: bool = True) -> tuple[int, int]:
    """(H, W) the network sees for an (height, width) frame; 480x854 -> 481x849."""
    sc = 1.0
    if max_short_edge is not None and min(height, width) > max_short_edge:
        sc *= float(max_short_edge) / min(height, width)
    new_h, new_w = sc * height, sc * width
    sc = 1.0
    if max_long_edge is not None and max(new_h, new_w) > max_long_edge:
        sc *= float(max_long_edge) / max(new_h, new_w)
    new_h, new_w = int(sc * new_h * scale), int(sc * new_w * scale)
    offset = 1 if align_corners else 0

    def snap(n: int) -> int:
        if (n - offset) % stride != 0:
            return int(np.around((n - offset) / stride) * stride + offset)
        return n

    return snap(new_h), snap(new_w)


def normalize_rgb(rgb: np.ndarray) -> np.ndarray:
    """RGB values on the 0..255 scale [..., 3] (uint8 or float) -> ImageNet-normalised float32 [..., 3].

    The one normalisation of vosuite, for inference and training alike: ``/255`` in float32, then
    minus the mean and divided by the std, each evaluated in float64 and rounded to float32 (what
    aot-benchmark's numpy in-place arithmetic does; pinned by the DeAOT fixture's input md5s).
    """
    x = np.asarray(rgb, dtype=np.float32) / np.float32(255.0)  # float32
    x = (x.astype(np.float64) - np.asarray(MEAN, dtype=np.float64)).astype(np.float32)
    return (x.astype(np.float64) / np.asarray(STD, dtype=np.float64)).astype(np.float32)


def preprocess_image(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """RGB uint8 (or float) [H, W, 3] -> normalised float32 [1, 3, h, w] (``size`` = (h, w)): bicubic
    resize (cv2, float32) when ``size`` differs, then :func:`normalize_rgb`."""
    img = np.asarray(rgb, dtype=np.float32)
    if size is not None and tuple(size) != img.shape[:2]:
        img = cv2.resize(img, dsize=(int(size[1]), int(size[0])), interpolation=cv2.INTER_CUBIC)
    x = normalize_rgb(img)  # [h, w, 3]
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Label map [N, 1, H, W] (any dtype) -> float [N, 1, h, w] with legacy ``nearest``."""
    return F.interpolate(label.float(), size=tuple(size), mode="nearest")
