"""S2S++ losses: distance classes against scipy's EDT, balanced BCE and log-Jaccard against direct
float64 formulas, the weighted sum and its gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from vosuite.models.s2s import RS2S_DISTANCE_CLASSES
from vosuite.training.methods.s2s.losses import (
    S2SLoss,
    S2SLossConfig,
    balanced_bce,
    distance_classes,
    log_jaccard_loss,
    num_distance_classes,
    truncated_squared_distance,
)


def reference_distance_classes(mask: np.ndarray, border: int, bin_size: int) -> np.ndarray:
    """RS2S dataloader.distance_map written out: floor of scipy's EDT inside and outside, binned."""
    fg = mask >= 0.5
    t = border // bin_size
    out = np.where(fg, 2 * t + 1, 0)
    if fg.all() or not fg.any():  # no boundary: scipy's EDT is undefined there, every pixel is far
        return out
    inside = np.floor(distance_transform_edt(fg)).astype(int)  # to the nearest background pixel
    outside = np.floor(distance_transform_edt(~fg)).astype(int)  # to the nearest foreground pixel
    for d in range(1, border + 1):
        out[fg & (inside == d)] = t + 1 + d // bin_size
        out[~fg & (outside == d)] = t - d // bin_size
    return out


def _blobs(seed: int, height: int, width: int, count: int) -> np.ndarray:
    """Union of random discs and rectangles, some touching the image border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), bool)
    for _ in range(count):
        cy, cx = rng.integers(-5, height + 5), rng.integers(-5, width + 5)
        if rng.random() < 0.5:
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(1, 15) ** 2
        else:
            mask |= (abs(yy - cy) <= rng.integers(0, 12)) & (abs(xx - cx) <= rng.integers(0, 12))
    return mask


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    single = np.zeros((30, 41), bool)
    single[17, 3] = True
    hole = np.ones((50, 60), bool)
    hole[20:23, 31] = False
    return [
        rng.random((33, 47)) < 0.5,  # noise: distances 1-2 everywhere
        rng.random((40, 52)) < 0.02,  # sparse points
        _blobs(1, 64, 80, 3),  # large blobs, distances beyond the border inside and outside
        _blobs(2, 57, 70, 8),
        single,
        hole,  # background island in a full mask
        np.zeros((20, 25), bool),  # empty
        np.ones((20, 25), bool),  # full
    ]


@pytest.mark.parametrize(("border", "bin_size"), [(20, 1), (5, 1), (20, 3), (7, 2), (150, 10)])
def test_distance_classes_match_scipy(border: int, bin_size: int) -> None:
    for mask in _masks():
        got = distance_classes(torch.from_numpy(mask).float(), border, bin_size)
        assert got.dtype == torch.int64 and got.shape == mask.shape
        np.testing.assert_array_equal(got.numpy(), reference_distance_classes(mask, border, bin_size))
        assert int(got.min()) >= 0 and int(got.max()) < num_distance_classes(border, bin_size)


def test_distance_classes_batched_bool_and_float_agree() -> None:
    masks = np.stack([_blobs(s, 48, 64, 4) for s in range(3)] + [np.zeros((48, 64), bool)])
    got = distance_classes(torch.from_numpy(masks)[:, None])  # [N, 1, H, W] bool
    assert got.shape == (4, 1, 48, 64)
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(got[i, 0].numpy(), reference_distance_classes(mask, 20, 1))
    assert torch.equal(distance_classes(torch.from_numpy(masks).double()), got[:, 0])


def test_distance_class_layout_of_rs2s() -> None:
    """42 classes; background 0..19 (19 next to the object), foreground 22..41; 20 and 21 unused."""
    assert num_distance_classes() == RS2S_DISTANCE_CLASSES == S2SLossConfig().num_classes == 42
    mask = torch.zeros(1, 101)
    mask[0, 50:] = 1  # a vertical edge between x = 49 and x = 50
    row = distance_classes(mask)[0]
    assert row[49] == 19 and row[30] == 0 and row[29] == 0 and row[31] == 1
    assert row[50] == 22 and row[69] == 41 and row[100] == 41
    assert set(row.tolist()).isdisjoint({20, 21})


def test_truncated_squared_distance_exact_below_radius() -> None:
    source = torch.from_numpy(_blobs(5, 60, 70, 2))
    expected = distance_transform_edt(~source.numpy()) ** 2
    got = truncated_squared_distance(source, 9).numpy()
    near = expected < 81
    np.testing.assert_array_equal(got[near], np.rint(expected[near]))
    assert (got[~near] >= 81).all()


def test_distance_classes_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        distance_classes(torch.zeros(4, 4), border=255)
    with pytest.raises(ValueError):
        distance_classes(torch.zeros(4, 4), bin_size=0)


def _logits_and_target(seed: int, shape=(2, 1, 5, 6), positive: float = 0.3):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    target = (torch.rand(shape, generator=generator, dtype=torch.float64) < positive).double()
    return logits, target


def reference_balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> float:
    xs, ys = logits.flatten().tolist(), target.flatten().tolist()
    n, n_pos = len(ys), sum(ys)
    total = 0.0
    for x, y in zip(xs, ys, strict=True):
        p = 1 / (1 + math.exp(-x))
        bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
        total += ((n - n_pos) / n if y else n_pos / n) * bce
    return total / n


@pytest.mark.parametrize("positive", [0.3, 0.8, 0.0, 1.0])
def test_balanced_bce_matches_direct_formula(positive: float) -> None:
    logits, target = _logits_and_target(0, positive=positive)
    got = balanced_bce(logits, target)
    assert got.ndim == 0
    assert math.isclose(float(got), reference_balanced_bce(logits, target), rel_tol=1e-12, abs_tol=1e-15)
    if positive in (0.0, 1.0):  # one class only: its weight (the other's share) is zero
        assert float(got) == 0.0


def test_log_jaccard_matches_direct_formula() -> None:
    logits, target = _logits_and_target(1)
    probs = [1 / (1 + math.exp(-x)) for x in logits.flatten().tolist()]
    truth = target.flatten().tolist()
    inter = sum(p * g for p, g in zip(probs, truth, strict=True))
    union = sum(probs) + sum(truth)
    expected = -math.log((inter + 1e-15) / (union - inter + 1e-15))
    assert math.isclose(float(log_jaccard_loss(logits, target)), expected, rel_tol=1e-12)


def test_s2s_loss_weights_terms_and_backpropagates() -> None:
    logits, target = _logits_and_target(2, shape=(2, 1, 24, 24), positive=0.0)
    target[:, :, 6:15, 5:18] = 1
    distance = torch.randn(2, 42, 24, 24, dtype=torch.float64, requires_grad=True)
    logits.requires_grad_(True)
    loss_fn = S2SLoss()
    total = loss_fn(logits, target, distance)
    classes = distance_classes(target[:, 0])
    expected = (0.6 * balanced_bce(logits, target) + 0.2 * F.cross_entropy(distance, classes)
                + 0.2 * log_jaccard_loss(logits, target))
    assert total.ndim == 0 and torch.allclose(total, expected, rtol=1e-12)
    total.backward()
    assert logits.grad is not None and distance.grad is not None and distance.grad.abs().sum() > 0
    without = loss_fn(logits.detach(), target)  # S2S baseline: no distance head, no distance term
    assert torch.allclose(without, 0.6 * balanced_bce(logits, target) + 0.2 * log_jaccard_loss(logits, target))
    assert set(loss_fn.terms(logits, target, distance)) == {"bce", "jaccard", "distance"}
    with pytest.raises(ValueError, match="42"):
        loss_fn(logits, target, distance[:, :10])


def test_s2s_loss_gradcheck() -> None:
    logits, target = _logits_and_target(3, shape=(1, 1, 6, 6))
    target[0, 0, 1:4, 1:4] = 1
    distance = torch.randn(1, 6, 6, 6, dtype=torch.float64)
    loss_fn = S2SLoss(S2SLossConfig(border=2))  # K = 6
    inputs = (logits.requires_grad_(True), distance.requires_grad_(True))
    classes = distance_classes(target[:, 0], border=2)
    assert torch.autograd.gradcheck(lambda x, d: loss_fn(x, target, d, classes), inputs)
