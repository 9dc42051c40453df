"""Region similarity J (Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video
Object Segmentation", CVPR 2016, Sec. 3.1): the intersection over union of a predicted and a
ground-truth mask, J = |M ∩ G| / |M ∪ G|.
"""

from __future__ import annotations

import numpy as np


def region_counts(prediction: np.ndarray, ground_truth: np.ndarray,
                  void: np.ndarray | None = None) -> tuple[int, int]:
    """(|P ∩ G|, |P ∪ G|) over non-void pixels of two boolean [H, W] masks."""
    intersection = np.logical_and(prediction, ground_truth)
    union = np.logical_or(prediction, ground_truth)
    if void is not None:
        valid = np.logical_not(void)
        intersection &= valid
        union &= valid
    return int(np.count_nonzero(intersection)), int(np.count_nonzero(union))


def jaccard_from_counts(intersection: int, union: int) -> float:
    """J from pixel counts; an empty union (both masks empty) scores 1, as in the DAVIS code."""
    if union == 0:
        return 1.0
    return float(np.float64(intersection) / np.float64(union))


def region_similarity(prediction: np.ndarray, ground_truth: np.ndarray,
                      void: np.ndarray | None = None) -> float:
    """J for one frame: |P ∩ G| / |P ∪ G| over non-void pixels; 1 when both masks are empty."""
    return jaccard_from_counts(*region_counts(prediction, ground_truth, void))
