"""The spatio-temporal transformer block of Betrayed by Attention (Ding et al. 2023, arXiv
2311.17893, Sec. 3.2; SSL-UVOS ``src/model/attention.py`` ``Block``).

One pre-norm transformer block over the tokens of several frames at once, so every token attends
to every token of every frame: ``x + Attn(LN1(x))``, then ``x + MLP(LN2(x))``. Its facts (from the
original, pinned by ``fixtures/ssl_uvos``):

* LayerNorm eps 1e-5 (PyTorch's default; DINO's own blocks use 1e-6);
* qkv without bias, 8 heads of 48 channels for 384, scale 48^-1/2; q = rows 0..383 of the qkv
  weight, head h = rows 48 h .. 48 h + 47; ``proj`` with bias;
* MLP 384 -> 1536 -> 384 with the exact (erf) GELU;
* no positional or temporal embedding: the block is permutation-equivariant over tokens;
* dropout (train mode only): ``attn_drop`` on the per-head softmax probabilities (what the losses
  read is that post-dropout attention, as in the original), ``proj_drop`` after ``proj``, and
  ``drop`` after the GELU and after ``fc2``.
"""

from __future__ import annotations

import torch
from torch import nn


class STAttention(nn.Module):
    """Multi-head self-attention returning its (post-dropout) per-head weights."""

    def __init__(self, dim: int = 384, num_heads: int = 8, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def heads(self, x: torch.Tensor, which: str) -> torch.Tensor:
        """The ``q``, ``k`` or ``v`` heads of x [B, N, D] -> [B, heads, N, head_dim] (only that third
        of the qkv product is computed)."""
        part = "qkv".index(which)
        dim = x.shape[-1]
        weight = self.qkv.weight[part * dim:(part + 1) * dim]
        b, n, _ = x.shape
        return (x @ weight.t()).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, D] -> (output [B, N, D], attention [B, heads, N, N] after dropout)."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_drop(torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(out)), attn


class STMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SpatioTemporalBlock(nn.Module):
    """The block (module docstring); parameter names as the original's ``temporal_transformer.0.*``."""

    def __init__(self, dim: int = 384, num_heads: int = 8, mlp_ratio: float = 4.0, drop: float = 0.1,
                 attn_drop: float = 0.4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = STAttention(dim, num_heads, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = STMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, D] -> (x [B, N, D], attention [B, heads, N, N])."""
        out, attn = self.attn(self.norm1(x))
        x = x + out
        return x + self.mlp(self.norm2(x)), attn
