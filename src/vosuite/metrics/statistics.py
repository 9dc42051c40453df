"""Per-object statistics over per-frame J or F values (Perazzi et al., CVPR 2016, Sec. 3.2):
Mean, Recall (fraction of frames scoring > 0.5) and Decay (performance loss over time: mean of the
first quarter of the frames minus mean of the last quarter).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


@dataclass(frozen=True)
class SequenceStatistics:
    mean: float
    recall: float
    decay: float


def decay_bin_edges(num_frames: int, official_uint8: bool = False) -> np.ndarray:
    """Edges e_k = round(1 + k (T-1) / 4 + 1e-10) - 1, k = 0..4; bin k spans e_k..e_{k+1} inclusive.

    ``official_uint8`` reproduces davis2017-evaluation, which stores the edges as uint8: for
    T >= 256 they wrap modulo 256 (and with numpy >= 2, ``edge + 1`` wraps too), which empties or
    scrambles the last bin. The default computes the edges in int64, as intended.
    """
    edges = np.round(np.linspace(1, num_frames, DECAY_BINS + 1) + 1e-10) - 1
    if official_uint8:
        return edges.astype(np.int64).astype(np.uint8)
    return edges.astype(np.int64)


def _bin_slices(num_frames: int, official_uint8: bool) -> list[slice]:
    edges = decay_bin_edges(num_frames, official_uint8)
    one = np.uint8(1) if official_uint8 else 1
    with np.errstate(over="ignore"):
        return [slice(int(edges[k]), int(edges[k + 1] + one)) for k in range(DECAY_BINS)]


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def mean_recall_decay(per_frame: np.ndarray, official_uint8_decay: bool = False) -> SequenceStatistics:
    """Mean (NaN-ignoring), Recall (> 0.5, NaN counts as a miss) and Decay of per-frame values."""
    per_frame = np.asarray(per_frame, dtype=np.float64)
    mean = _nanmean(per_frame)
    recall = _nanmean(per_frame > RECALL_THRESHOLD)
    bins = [per_frame[s] for s in _bin_slices(len(per_frame), official_uint8_decay)]
    decay = _nanmean(bins[0]) - _nanmean(bins[DECAY_BINS - 1])
    return SequenceStatistics(mean=mean, recall=recall, decay=decay)
