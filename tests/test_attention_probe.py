"""DINO's attention probe (benchmarks/attention_probe.py): the 60 %-mass masks against their
definition computed independently in float64, and the CLS attention against the ViT's own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from vosuite.checkpoints.dino import build_vit

_spec = importlib.util.spec_from_file_location(
    "attention_probe", Path(__file__).resolve().parents[1] / "benchmarks" / "attention_probe.py")
_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_probe)
cls_attention, mass_masks = _probe.cls_attention, _probe.mass_masks


def reference_mass_mask(weights: np.ndarray, mass: float) -> np.ndarray:
    """float64, one head: an entry is kept when the entries larger than it hold less than ``mass``
    of the total (so the kept set is the smallest top set holding at least ``mass``)."""
    share = weights.astype(np.float64) / weights.sum(dtype=np.float64)
    above = np.array([share[share > value].sum() for value in share])
    return above < mass


@pytest.mark.parametrize("mass", [0.1, 0.6, 0.9, 1.0])
def test_mass_masks_keep_the_smallest_top_set_holding_the_mass(mass: float) -> None:
    generator = torch.Generator().manual_seed(3)
    attention = torch.softmax(torch.randn(3, 7, 9, generator=generator) * 2.0, dim=-1).reshape(3, 7, 9)
    masks = mass_masks(attention, mass)
    assert masks.shape == attention.shape and masks.dtype == torch.bool
    for head in range(3):
        weights = attention[head].flatten().numpy()
        expected = reference_mass_mask(weights, mass)
        assert np.array_equal(masks[head].flatten().numpy(), expected)
        kept = weights[expected].sum() / weights.sum()
        assert kept >= mass - 1e-6
        without_smallest = np.sort(weights[expected])[1:].sum() / weights.sum() if expected.sum() > 1 else 0.0
        assert without_smallest < mass  # minimal: without its smallest entry the set holds less


def test_mass_masks_refuse_a_share_outside_0_1() -> None:
    with pytest.raises(ValueError, match="mass"):
        mass_masks(torch.rand(2, 4), 1.5)


def test_cls_attention_is_the_last_blocks_cls_row_over_the_patches() -> None:
    torch.manual_seed(0)
    vit = build_vit("dino-vitt16")
    image = torch.randn(1, 3, 32, 48)
    maps = cls_attention(vit, image)
    assert maps.shape == (3, 2, 3)
    with torch.no_grad():
        attention = vit.features(image)[1]
    assert torch.equal(maps.flatten(1), attention[0, :, 0, 1:])
    # each head's row is a distribution over CLS + patches: the patches hold all but the CLS share
    torch.testing.assert_close(maps.flatten(1).sum(1) + attention[0, :, 0, 0], torch.ones(3))
