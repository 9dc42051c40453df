"""Boundary accuracy F (Perazzi et al., CVPR 2016, Sec. 3.1, "Contour Accuracy F").

The contour of a mask is the DAVIS ``seg2bmap`` boundary map: a pixel is a boundary pixel when
its label differs from its east, south or south-east neighbour (last row: east only; last column:
south only; the bottom-right pixel never). Precision and recall count the boundary pixels of one
mask that lie within a disk of radius r = ceil(0.008 * sqrt(H^2 + W^2)) of the other mask's
boundary, and F = 2PR / (P + R).

The official code dilates both full-frame boundary maps. Here each direction dilates only the
window where a pixel of one boundary can lie within r of the other's bounding box, which gives the
same integer counts (no pixel outside it can match) at a fraction of the cost.
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
    ``first``), the counts of the official full-frame dilation and intersection."""
    return _matched(first, second, radius), _matched(second, first, radius)


def _matched(target: Boundary, source: Boundary, radius: int) -> int:
    """Pixels of ``target`` with a ``source`` pixel within ``radius`` (a disk).

    Only target pixels inside the source's window grown by ``radius`` can match, so the dilation of
    the source runs on that intersection (grown by ``radius`` to hold every source pixel that can
    reach it), not on the frame: a far-away spurious region costs nothing.
    """
    if target.count == 0 or source.count == 0:
        return 0
    top, bottom = max(target.top, source.top - radius), min(target.bottom, source.bottom + radius)
    left, right = max(target.left, source.left - radius), min(target.right, source.right + radius)
    if top >= bottom or left >= right:
        return 0
    target_crop = _crop(target, top, bottom, left, right)
    source_canvas = _crop(source, top - radius, bottom + radius, left - radius, right + radius)
    reach = cv2.dilate(source_canvas, disk(radius))[radius:-radius or None, radius:-radius or None]
    return int(np.count_nonzero(target_crop & reach))


def _crop(boundary: Boundary, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """The boundary map over rows top:bottom and columns left:right of the frame (zeros outside it)."""
    canvas = np.zeros((bottom - top, right - left), np.uint8)
    row_start, row_end = max(top, boundary.top), min(bottom, boundary.bottom)
    col_start, col_end = max(left, boundary.left), min(right, boundary.right)
    if row_start < row_end and col_start < col_end:
        canvas[row_start - top:row_end - top, col_start - left:col_end - left] = boundary.pixels[
            row_start - boundary.top:row_end - boundary.top, col_start - boundary.left:col_end - boundary.left]
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
