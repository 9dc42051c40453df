"""DINO's attention probe of a backbone (Caron et al. 2021, arXiv 2104.14294, Sec. 4.2.1 and Fig. 4;
``visualize_attention.py``): the last block's CLS-token attention over the patches, one map per
head, thresholded to keep 60 % of its mass. The paper scores these masks by their Jaccard index
with ground-truth objects (the best head); ``benchmarks/dino_attention.py`` does so on DAVIS, to
tell whether a backbone's attention carries objects before the Betrayed-by-Attention block is
trained on it.
"""

from __future__ import annotations

import torch

from vosuite.nn.vit import VisionTransformer

#: DINO's ``--threshold`` default: the share of each head's attention mass the mask keeps.
DINO_MASS = 0.6


def cls_attention(vit: VisionTransformer, image: torch.Tensor) -> torch.Tensor:
    """One preprocessed image [1, 3, H, W] (multiples of the patch) -> the last block's attention of
    the CLS token over the patches [heads, H / patch, W / patch]."""
    patch = vit.cfg.patch_size
    rows, cols = image.shape[-2] // patch, image.shape[-1] // patch
    with torch.no_grad():
        attention = vit.features(image)[1]  # [1, heads, 1 + N, 1 + N]
    return attention[0, :, 0, 1:].reshape(-1, rows, cols)


def mass_masks(attention: torch.Tensor, mass: float = DINO_MASS) -> torch.Tensor:
    """Per-head attention [heads, ...] -> bool masks of the same shape keeping the largest entries
    that hold ``mass`` of each head's total, as ``visualize_attention.py`` does: sort ascending,
    normalise, cumulative sum, keep the entries whose cumulative sum exceeds 1 - mass (an entry is
    kept when the entries above it hold less than ``mass``)."""
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass {mass}: use a share in (0, 1]")
    flat = attention.reshape(attention.shape[0], -1)  # [heads, n]
    values, order = torch.sort(flat, dim=1)
    values = values / values.sum(dim=1, keepdim=True)
    keep_sorted = torch.cumsum(values, dim=1) > (1.0 - mass)
    keep = torch.empty_like(keep_sorted)
    keep.scatter_(1, order, keep_sorted)
    return keep.reshape(attention.shape)


__all__ = ["DINO_MASS", "cls_attention", "mass_masks"]
