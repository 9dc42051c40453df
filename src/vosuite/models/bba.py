"""Betrayed by Attention (Ding, Qian, Xu, Lin, Xiong 2023, arXiv 2311.17893; code
shvdiwnkozbw/SSL-UVOS, ``src/model/model_cluster.py`` ``AttEncoder``): unsupervised multi-object
VOS from a frozen DINO ViT and one spatio-temporal block (:mod:`vosuite.nn.st_block`).

The network part here is the block and how its inputs and outputs are arranged (Sec. 3.2):

* **inputs**, per frame, ``[CLS, keys]``: the CLS slot is the ViT's output CLS token of the last
  block (no final norm), the patch slots are that last block's attention *keys* (with the qkv
  bias; channels head-major), no positional or temporal embedding; the T frames' tokens are
  concatenated frame-major and attend to each other in one block;
* **outputs**: the block's tokens, the *slots* (its patch tokens, CLS slots dropped, [B, T, hw, C])
  and ``attn_temporal``: the per-head attention averaged over heads with each frame's CLS row and
  column removed ([B, T*hw, T*hw], frame-major, row-major patches; rows not renormalised).

The frozen DINO encoder (:class:`vosuite.nn.vit.VisionTransformer`) is attached separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vosuite.nn.st_block import SpatioTemporalBlock


@dataclass(frozen=True)
class BbAConfig:
    """The ST block of SSL-UVOS (``AttEncoder(num_t=1, path_drop, attn_drop_t)``)."""

    name: str = "bba-vits8"
    dim: int = 384
    num_heads: int = 8
    drop: float = 0.1  # path_drop
    attn_drop: float = 0.4  # attn_drop_t
    num_blocks: int = 1  # num_t


@dataclass(frozen=True)
class STOutput:
    """The block's tokens [B, T, 1+hw, C], the slots [B, T, hw, C] and attn_temporal [B, T*hw, T*hw]."""

    tokens: torch.Tensor
    slots: torch.Tensor
    attn_temporal: torch.Tensor
    attention: torch.Tensor  # per head, with CLS [B, heads, T*(1+hw), T*(1+hw)]


class BetrayedByAttention(nn.Module):
    """The trainable part of Betrayed by Attention: the spatio-temporal block(s) (``temporal_transformer``)."""

    def __init__(self, cfg: BbAConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or BbAConfig()
        self.temporal_transformer = nn.ModuleList(
            SpatioTemporalBlock(cfg.dim, cfg.num_heads, drop=cfg.drop, attn_drop=cfg.attn_drop)
            for _ in range(cfg.num_blocks))

    def forward(self, tokens: torch.Tensor) -> STOutput:
        """tokens [B, T, 1 + hw, C] (per frame [CLS, keys]) -> :class:`STOutput`."""
        b, t, n, c = tokens.shape
        x = tokens.reshape(b, t * n, c)
        attention = None
        for block in self.temporal_transformer:
            x, attention = block(x)
        x = x.view(b, t, n, c)
        patches = torch.ones(t, n, dtype=torch.bool, device=x.device)
        patches[:, 0] = False  # the CLS slot of every frame
        keep = patches.flatten()
        mean = attention.mean(dim=1)  # [B, T*n, T*n]
        attn_temporal = mean[:, keep][:, :, keep]  # [B, T*hw, T*hw]
        return STOutput(tokens=x, slots=x[:, :, 1:], attn_temporal=attn_temporal, attention=attention)
