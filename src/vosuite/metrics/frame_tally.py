"""Pixel and boundary counts of one frame, from which J and F of any (prediction, truth) pair follow.

A frame is read once and reduced to integer counts: object areas, pairwise intersections, boundary
sizes and matched boundary pixels. J and F of a pair whose object is absent from the frame follow
from the counts of the other side alone, so a tally answers for every object of the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vosuite.io.masks import VOID_ID
from vosuite.metrics.boundary import Boundary, extract_boundary, f_from_counts, matched_counts
from vosuite.metrics.region import jaccard_from_counts

Pair = tuple[int, int]  # (prediction id, ground-truth id)


@dataclass
class FrameTally:
    truth_area: dict[int, int] = field(default_factory=dict)
    prediction_area: dict[int, int] = field(default_factory=dict)
    intersection: dict[Pair, int] = field(default_factory=dict)
    truth_boundary: dict[int, int] = field(default_factory=dict)
    prediction_boundary: dict[int, int] = field(default_factory=dict)
    matched: dict[Pair, tuple[int, int]] = field(default_factory=dict)  # (prediction, truth) matched
    pixels: int = 0  # pixels of the frame (void included): object areas as fractions of the frame

    def area_fraction(self, truth_id: int) -> float:
        """The ground-truth object's area as a fraction of the frame (0 where it is absent)."""
        return self.truth_area.get(truth_id, 0) / self.pixels if self.pixels else 0.0

    def jaccard(self, prediction_id: int, truth_id: int) -> float:
        inter = self.intersection.get((prediction_id, truth_id), 0)
        union = self.prediction_area.get(prediction_id, 0) + self.truth_area.get(truth_id, 0) - inter
        return jaccard_from_counts(inter, union)

    def f_measure(self, prediction_id: int, truth_id: int) -> float:
        prediction_count = self.prediction_boundary.get(prediction_id, 0)
        truth_count = self.truth_boundary.get(truth_id, 0)
        prediction_matched, truth_matched = self.matched.get((prediction_id, truth_id), (0, 0))
        if prediction_count and truth_count and (prediction_id, truth_id) not in self.matched:
            raise KeyError(f"boundary matches of pair {(prediction_id, truth_id)} were not tallied")
        return f_from_counts(prediction_count, truth_count, prediction_matched, truth_matched)


def id_histogram(labels: np.ndarray) -> np.ndarray:
    """Pixel count per id value of a label map; OpenCV's histogram for 8-bit maps (no int64 copy)."""
    if labels.dtype == np.uint8:
        return cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(labels.ravel())


def present_ids(labels: np.ndarray, exclude: tuple[int, ...] = (0,)) -> list[int]:
    """Ids present in a label map, ascending, without those in ``exclude``."""
    return [int(i) for i in np.flatnonzero(id_histogram(labels)) if int(i) not in exclude]


def _areas_and_boundaries(masks: dict[int, np.ndarray]) -> tuple[dict[int, int], dict[int, Boundary]]:
    areas = {object_id: int(np.count_nonzero(mask)) for object_id, mask in masks.items()}
    boundaries = {object_id: extract_boundary(mask) for object_id, mask in masks.items()}
    return areas, boundaries


def tally_frame(truth: np.ndarray, prediction: np.ndarray, radius: int, *, exclude_void: bool,
                all_pairs: bool) -> FrameTally:
    """Count everything J and F need for one frame.

    Args:
        truth: [H, W] ground-truth ids, ``VOID_ID`` (255) marks void pixels.
        prediction: [H, W] predicted ids (0 = background).
        radius: boundary tolerance in pixels.
        exclude_void: unsupervised protocol: void pixels leave J's counts and become background
            before boundaries are extracted. Otherwise (semi-supervised) void is plain background.
        all_pairs: tally every (prediction, truth) pair (unsupervised matching); otherwise only
            pairs of equal ids.
    """
    void = truth == VOID_ID
    has_void = bool(void.any())
    valid = ~void if has_void else None
    truth_masks = {i: truth == i for i in present_ids(truth, exclude=(0, VOID_ID))}
    prediction_masks = {i: prediction == i for i in present_ids(prediction)}
    if exclude_void and has_void:
        prediction_masks = {i: mask & valid for i, mask in prediction_masks.items()}
    truth_area, truth_boundaries = _areas_and_boundaries(truth_masks)
    prediction_area, prediction_boundaries = _areas_and_boundaries(prediction_masks)
    tally = FrameTally(truth_area=truth_area, prediction_area=prediction_area, pixels=int(truth.size),
                       truth_boundary={i: b.count for i, b in truth_boundaries.items()},
                       prediction_boundary={i: b.count for i, b in prediction_boundaries.items()})
    for prediction_id, prediction_mask in prediction_masks.items():
        for truth_id, truth_mask in truth_masks.items():
            if not all_pairs and prediction_id != truth_id:
                continue
            pair = (prediction_id, truth_id)
            tally.intersection[pair] = int(np.count_nonzero(prediction_mask & truth_mask))
            tally.matched[pair] = matched_counts(prediction_boundaries[prediction_id],
                                                 truth_boundaries[truth_id], radius)
    return tally
