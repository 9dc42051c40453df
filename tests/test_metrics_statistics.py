"""Mean, Recall and Decay of per-frame values (vosuite.metrics.statistics) against the official
``db_statistics`` of davis2017-evaluation, re-written below with integer (not uint8) bin edges."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from vosuite.metrics import decay_bin_edges, mean_recall_decay


def ref_edges(num_frames: int) -> list[int]:
    """e_k = round(1 + k (T-1) / 4 + 1e-10) - 1 with halves rounded up, in exact integer arithmetic:
    1 + k (T-1) / 4 is a multiple of 1/4, so rounding half up is floor((4 + k (T-1) + 2) / 4)."""
    return [(4 + k * (num_frames - 1) + 2) // 4 - 1 for k in range(5)]


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def ref_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Official db_statistics: nanmean, nanmean(values > 0.5), mean(bin 0) - mean(bin 3), bins
    e_k..e_{k+1} inclusive."""
    values = np.asarray(values, dtype=np.float64)
    edges = ref_edges(len(values))
    bins = [values[edges[k] : edges[k + 1] + 1] for k in range(4)]
    return _nanmean(values), _nanmean(values > 0.5), _nanmean(bins[0]) - _nanmean(bins[3])


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_bin_edges_examples() -> None:
    assert decay_bin_edges(48).tolist() == [0, 12, 24, 35, 47]
    assert decay_bin_edges(1).tolist() == [0, 0, 0, 0, 0]
    assert decay_bin_edges(2).tolist() == [0, 0, 1, 1, 1]
    assert ref_edges(48) == [0, 12, 24, 35, 47] and ref_edges(2) == [0, 0, 1, 1, 1]
    # The 1e-10 offset rounds exact halves up (numpy alone would round 2.5 to 2): T = 7 -> 2.5, 4, 5.5.
    assert decay_bin_edges(7).tolist() == [0, 2, 3, 5, 6]


def test_bin_edges_equal_reference_and_wrap_when_uint8() -> None:
    for num_frames in range(1, 2001):
        expected = ref_edges(num_frames)
        assert decay_bin_edges(num_frames).tolist() == expected, num_frames
        assert decay_bin_edges(num_frames, official_uint8=True).tolist() == [e % 256 for e in expected], num_frames


def test_small_sequences() -> None:
    one = mean_recall_decay(np.array([0.3]))
    assert (one.mean, one.recall, one.decay) == (0.3, 0.0, 0.0)
    two = mean_recall_decay(np.array([1.0, 0.25]))
    # edges 0, 0, 1, 1, 1: bin 0 = frame 0, bin 3 = frame 1
    assert (two.mean, two.recall, two.decay) == (0.625, 0.5, 0.75)


def test_decay_at_48_frames_uses_inclusive_bins() -> None:
    values = np.arange(48, dtype=np.float64)
    stats = mean_recall_decay(values)
    assert stats.decay == np.mean(values[0:13]) - np.mean(values[35:48]) == 6.0 - 41.0


def test_recall_is_strictly_above_half_and_nan_is_a_miss() -> None:
    values = np.array([0.5, 0.5000001, np.nan, 1.0, 0.49])
    stats = mean_recall_decay(values)
    assert stats.recall == 2 / 5
    assert stats.mean == np.mean([0.5, 0.5000001, 1.0, 0.49])  # NaN ignored in the mean
    all_nan = mean_recall_decay(np.full(6, np.nan))
    assert math.isnan(all_nan.mean) and all_nan.recall == 0.0 and math.isnan(all_nan.decay)


@pytest.mark.parametrize("seed", range(4))
def test_statistics_equal_reference_on_random_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for num_frames in [*range(1, 40), 48, 50, 77, 100, 104, 255, 256, 300, 350, 600]:
        values = rng.random(num_frames)
        values[rng.random(num_frames) < 0.1] = 0.5
        values[rng.random(num_frames) < 0.1] = np.nan
        values[rng.random(num_frames) < 0.05] = 0.0
        values[rng.random(num_frames) < 0.05] = 1.0
        ours = mean_recall_decay(values)
        expected = ref_statistics(values)
        for name, got, want in zip(
            ("mean", "recall", "decay"), (ours.mean, ours.recall, ours.decay), expected, strict=True
        ):
            assert same(got, want), (num_frames, name, got, want)


def _official_uint8_statistics(values: np.ndarray) -> float:
    """The official decay exactly as shipped: uint8 edges, ``ids[i + 1] + 1`` in uint8 (numpy >= 2)."""
    ids = np.round(np.linspace(1, len(values), 5) + 1e-10) - 1
    ids = ids.astype(np.uint8)
    with np.errstate(over="ignore"):
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return _nanmean(bins[0]) - _nanmean(bins[3])


def test_official_uint8_decay_breaks_at_256_frames() -> None:
    values = np.linspace(1.0, 0.0, 256)
    official = mean_recall_decay(values, official_uint8_decay=True)
    assert math.isnan(official.decay)  # edge 255 + 1 wraps to 0: bin 3 is empty
    assert math.isnan(_official_uint8_statistics(values))
    default = mean_recall_decay(values)
    assert default.decay == np.mean(values[0:65]) - np.mean(values[191:256])
    assert official.mean == default.mean and official.recall == default.recall


def test_official_uint8_decay_is_wrong_at_350_frames() -> None:
    values = np.linspace(1.0, 0.0, 350) ** 2
    edges = ref_edges(350)
    assert edges == [0, 87, 175, 262, 349]
    direct = float(np.mean(values[0:88]) - np.mean(values[262:350]))
    default = mean_recall_decay(values)
    official = mean_recall_decay(values, official_uint8_decay=True)
    assert default.decay == direct
    # uint8 edges 262 -> 6 and 349 -> 93: bin 3 becomes frames 6..93
    wrong = float(np.mean(values[0:88]) - np.mean(values[6:94]))
    assert official.decay == wrong == _official_uint8_statistics(values)
    assert abs(official.decay - direct) > 0.5
