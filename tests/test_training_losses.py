"""AOT losses against direct float64 loops, the hard-mining schedule, channel cuts and gradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vosuite.training.methods.deaot.losses import (
    AOTLoss,
    LossConfig,
    bootstrapped_cross_entropy,
    hard_pixel_fraction,
    soft_jaccard_loss,
)


def _inputs(seed: int, batch: int = 2, classes: int = 3, height: int = 4, width: int = 5):
    """Random float64 logits [B, C, H, W] and labels [B, H, W] with some void (255) pixels."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, height, width, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, classes, (batch, height, width), generator=generator)
    labels[0, 0, :2] = 255
    return logits, labels


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _pixels(logits: torch.Tensor, labels: torch.Tensor, b: int):
    """(class scores, label) of every pixel of sample b, as Python floats and ints."""
    array, targets = logits[b].numpy(), labels[b].numpy()
    for y in range(array.shape[1]):
        for x in range(array.shape[2]):
            yield [float(v) for v in array[:, y, x]], int(targets[y, x])


def reference_topk_ce(logits: torch.Tensor, labels: torch.Tensor, fraction: float) -> list[float]:
    """Per sample: -log softmax at every pixel (0 for void), sorted, mean of the int(fraction * P) largest."""
    out = []
    for b in range(logits.shape[0]):
        losses = [0.0 if t == 255 else -math.log(_softmax(s)[t]) for s, t in _pixels(logits, labels, b)]
        losses.sort(reverse=True)
        k = int(fraction * len(losses))
        out.append(sum(losses[:k]) / k)
    return out


def reference_jaccard(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per sample: mean over present classes of 1 - sum(p g) / (sum(p) + sum(g) - sum(p g) + 1e-6), void skipped."""
    out = []
    for b in range(logits.shape[0]):
        pixels = [(_softmax(s), t) for s, t in _pixels(logits, labels, b) if t != 255]
        terms = []
        for c in range(logits.shape[1]):
            if not any(t == c for _, t in pixels):
                continue
            inter = sum(p[c] for p, t in pixels if t == c)
            prob_sum = sum(p[c] for p, _ in pixels)
            truth_sum = sum(1 for _, t in pixels if t == c)
            terms.append(1 - inter / (prob_sum + truth_sum - inter + 1e-6))
        out.append(sum(terms) / len(terms))
    return out


@pytest.mark.parametrize("fraction", [1.0, 0.6, 0.15])
def test_bootstrapped_ce_matches_direct_computation(fraction: float) -> None:
    logits, labels = _inputs(0)
    got = bootstrapped_cross_entropy(logits, labels, fraction)
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), reference_topk_ce(logits, labels, fraction), rtol=1e-12)
    got_4d = bootstrapped_cross_entropy(logits, labels[:, None], fraction)  # [B, 1, H, W] labels
    np.testing.assert_allclose(got_4d.numpy(), got.numpy(), rtol=0)


def test_topk_fraction_changes_the_loss() -> None:
    logits, labels = _inputs(1)
    full, hard = bootstrapped_cross_entropy(logits, labels, 1.0), bootstrapped_cross_entropy(logits, labels, 0.15)
    assert (hard > full).all()


def test_soft_jaccard_matches_direct_computation() -> None:
    logits, labels = _inputs(2, classes=4)
    labels[1][labels[1] == 3] = 0  # class 3 absent from sample 1: left out of its mean
    got = soft_jaccard_loss(logits, labels)
    np.testing.assert_allclose(got.numpy(), reference_jaccard(logits, labels), rtol=1e-12)


def test_soft_jaccard_is_near_zero_for_a_confident_correct_prediction() -> None:
    labels = torch.tensor([[[0, 1], [2, 1]]])
    logits = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double() * 50
    assert soft_jaccard_loss(logits, labels).item() == pytest.approx(0.0, abs=1e-6)
    all_void = torch.full_like(labels, 255)
    assert soft_jaccard_loss(logits, all_void).item() == 0.0


def test_obj_nums_cut_the_channels_per_sample() -> None:
    logits, labels = _inputs(3, classes=4)
    labels = labels.clamp(max=1)  # sample objects: 0/1 only
    obj_nums = [1, 3]
    for loss in (soft_jaccard_loss, lambda lg, lb, n=None: bootstrapped_cross_entropy(lg, lb, 0.5, n)):
        cut = loss(logits, labels, obj_nums)
        assert cut[0].item() == pytest.approx(loss(logits[:1, :2], labels[:1])[0].item(), rel=1e-12)
        assert cut[1].item() == pytest.approx(loss(logits[1:], labels[1:])[0].item(), rel=1e-12)
        assert cut[0].item() != pytest.approx(loss(logits[:1], labels[:1])[0].item(), rel=1e-6)


def test_hard_mining_schedule_follows_aot() -> None:
    assert hard_pixel_fraction(0, 0.15, 1000) == 1.0
    assert hard_pixel_fraction(500, 0.15, 1000) == pytest.approx(0.575)
    assert hard_pixel_fraction(1000, 0.15, 1000) == pytest.approx(0.15)
    assert hard_pixel_fraction(5000, 0.15, 1000) == pytest.approx(0.15)
    assert hard_pixel_fraction(0, 0.15, 0) == 0.15
    with pytest.raises(ValueError):
        hard_pixel_fraction(0, 0.0, 10)


def test_aot_loss_combines_half_and_half_with_the_schedule() -> None:
    logits, labels = _inputs(4)
    loss = AOTLoss(total_steps=200, config=LossConfig())  # warm-up: 0.5 x 200 = 100 steps
    assert loss.fraction(50) == pytest.approx(0.575)
    expected = 0.5 * np.array(reference_topk_ce(logits, labels, 0.575)) + 0.5 * np.array(
        reference_jaccard(logits, labels)
    )
    np.testing.assert_allclose(loss(logits, labels, step=50).numpy(), expected, rtol=1e-12)


def test_gradcheck_both_losses() -> None:
    logits, labels = _inputs(5, batch=1, classes=3, height=3, width=3)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: bootstrapped_cross_entropy(x, labels, 0.5), (logits,))
    assert torch.autograd.gradcheck(lambda x: soft_jaccard_loss(x, labels), (logits,))
