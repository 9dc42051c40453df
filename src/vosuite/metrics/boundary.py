"""Boundary accuracy F (Perazzi et al., CVPR 2016, Sec. 3.1, "Contour Accuracy F").

The contour of a mask is the DAVIS ``seg2bmap`` boundary map: a pixel is a boundary pixel when
its label differs from its east, south or south-east neighbour (last row: east only; last column:
south only; the bottom-right pixel never). Precision and recall count the boundary pixels of one
mask that lie within a disk of radius r = ceil(0.008 * sqrt(H^2 + W^2)) of the other mask's
boundary, and F = 2PR / (P + R).

The official code dilates both full-frame boundary maps. Here the dilation runs on the smallest
window that holds both boundaries plus r pixels, which gives the same integer counts (a pixel
outside that window can neither be a boundary pixel nor be reached by the disk) at a fraction of
the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


def boundary_tolerance(height: int, width: int, bound_th: float = 0.008) -> int:
    """Tolerance radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(height, width)))


@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """The structuring element of offsets (dy, dx) with dy^2 + dx^2 <= radius^2, as uint8."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The DAVIS ``seg2bmap`` boundary of a boolean [H, W] mask (see the module docstring)."""
    mask = mask.astype(bool, copy=False)
    boundary = np.zeros_like(mask)
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        return boundary
    core = mask[:-1, :-1]
    boundary[:-1, :-1] = (core != mask[:-1, 1:]) | (core != mask[1:, :-1]) | (core != mask[1:, 1:])
    boundary[-1, :-1] = mask[-1, :-1] != mask[-1, 1:]
    boundary[:-1, -1] = mask[:-1, -1] != mask[1:, -1]
    boundary[-1, -1] = False
    return boundary


@dataclass(frozen=True)
class Boundary:
    """A boundary map stored as its bounding window: ``pixels`` is the crop at (top, left)."""

    pixels: np.ndarray  # [h, w] uint8 0/1, the crop of the full boundary map
    top: int
    left: int
    count: int

    @property
    def bottom(self) -> int:
        return self.top + self.pixels.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.pixels.shape[1]


def extract_boundary(mask: np.ndarray) -> Boundary:
    """Boundary map of a boolean [H, W] mask, cropped to the window that holds all its pixels.

    Boundary pixels of a mask lie inside its bounding box grown by one pixel up and left (the
    pixels whose south or east neighbour is in the object). The map is computed on the box grown
    by one pixel on every side: the extra bottom row and right column lie outside the object, so
    they hold no boundary pixel, and the image-edge rules of ``boundary_map`` can only fire there
    when they are the image's true last row or column.
    """
    height, width = mask.shape
    mask_u8 = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).astype(np.uint8)
    x, y, box_w, box_h = cv2.boundingRect(mask_u8)
    if box_w == 0 or box_h == 0 or (box_w == width and box_h == height and mask_u8.all()):
        return Boundary(np.zeros((0, 0), np.uint8), 0, 0, 0)
    top, left = max(y - 1, 0), max(x - 1, 0)
    bottom, right = min(y + box_h + 1, height), min(x + box_w + 1, width)
    pixels = boundary_map(mask[top:bottom, left:right]).view(np.uint8)
    return Boundary(pixels, top, left, int(np.count_nonzero(pixels)))


def matched_counts(first: Boundary, second: Boundary, radius: int) -> tuple[int, int]:
    """(pixels of ``first`` within ``radius`` of ``second``, pixels of ``second`` within ``radius`` of
    ``first``), computed on the union window of both boundaries grown by ``radius``."""
    if first.count == 0 or second.count == 0:
        return 0, 0
    top, left = min(first.top, second.top) - radius, min(first.left, second.left) - radius
    bottom, right = max(first.bottom, second.bottom) + radius, max(first.right, second.right) + radius
    shape = (bottom - top, right - left)
    first_canvas = _place(first, shape, top, left)
    second_canvas = _place(second, shape, top, left)
    kernel = disk(radius)
    first_dilated = cv2.dilate(first_canvas, kernel)
    second_dilated = cv2.dilate(second_canvas, kernel)
    first_matched = int(np.count_nonzero(first_canvas & second_dilated))
    second_matched = int(np.count_nonzero(second_canvas & first_dilated))
    return first_matched, second_matched


def _place(boundary: Boundary, shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    row, column = boundary.top - top, boundary.left - left
    canvas[row:row + boundary.pixels.shape[0], column:column + boundary.pixels.shape[1]] = boundary.pixels
    return canvas


def f_from_counts(prediction_count: int, truth_count: int,
                  prediction_matched: int, truth_matched: int) -> float:
    """F from boundary pixel counts, with the DAVIS conventions for empty boundary maps."""
    if prediction_count == 0 and truth_count > 0:
        precision, recall = 1.0, 0.0
    elif prediction_count > 0 and truth_count == 0:
        precision, recall = 0.0, 1.0
    elif prediction_count == 0 and truth_count == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = prediction_matched / float(prediction_count)
        recall = truth_matched / float(truth_count)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def f_between(prediction: Boundary, truth: Boundary, radius: int) -> float:
    """F of two extracted boundaries."""
    prediction_matched, truth_matched = matched_counts(prediction, truth, radius)
    return f_from_counts(prediction.count, truth.count, prediction_matched, truth_matched)


def boundary_f_measure(prediction: np.ndarray, ground_truth: np.ndarray,
                       void: np.ndarray | None = None, bound_th: float = 0.008) -> float:
    """F for one frame of two boolean [H, W] masks; void pixels become background first."""
    if void is not None:
        prediction = prediction & ~void
        ground_truth = ground_truth & ~void
    radius = boundary_tolerance(*prediction.shape, bound_th=bound_th)
    return f_between(extract_boundary(prediction), extract_boundary(ground_truth), radius)
