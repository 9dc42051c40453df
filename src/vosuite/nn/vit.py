"""The DINO Vision Transformer (Caron et al., "Emerging Properties in Self-Supervised Vision
Transformers", ICCV 2021; ViT of Dosovitskiy et al., ICLR 2021), the frozen backbone of Betrayed
by Attention (Ding et al. 2023, arXiv 2311.17893, Sec. 3.1).

Parameter names are those of DINO's ``vision_transformer.py`` (``cls_token``, ``pos_embed``,
``patch_embed.proj``, ``blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``,
``norm``) so official checkpoints load as they are. Per block: pre-norm multi-head self-attention
(scale head_dim^-1/2, qkv with bias) and an MLP (ratio 4, exact GELU), both residual; LayerNorm
eps 1e-6; a final LayerNorm.

**Position embeddings at other resolutions** (:meth:`VisionTransformer.interpolate_pos_encoding`)
follow DINO exactly, because features depend on it: the embedding is used unchanged when the
patch count equals the training one (196) and the image is square; otherwise the 14 x 14 patch
grid is resized bicubically (PyTorch's A = -0.75, align_corners False) with
``scale_factor = ((rows + 0.1) / 14, (cols + 0.1) / 14)``, so that the output is rows x cols but
source coordinates map with 14 / (rows + 0.1), not 14 / rows (a plain ``size=`` resize differs by
up to 6.6e-3, see the fixture README); the CLS position is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """A DINO ViT (``vit_tiny`` / ``vit_small`` / ``vit_base`` of DINO, patch 16 or 8)."""

    name: str = "dino-vits16"
    patch_size: int = 16
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    img_size: int = 224  # the training resolution: pos_embed holds (img_size / patch)^2 + 1 positions

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size


#: The DINO backbones.
VIT_VARIANTS: dict[str, ViTConfig] = {
    "dino-vitt16": ViTConfig("dino-vitt16", 16, 192, 12, 3),  # DINO's vit_tiny (no official weights)
    "dino-vits16": ViTConfig("dino-vits16", 16, 384, 12, 6),
    "dino-vits8": ViTConfig("dino-vits8", 8, 384, 12, 6),
    "dino-vitb16": ViTConfig("dino-vitb16", 16, 768, 12, 12),
    "dino-vitb8": ViTConfig("dino-vitb8", 8, 768, 12, 12),
}


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` Linear(D, 3D), softmax(q k^T * head_dim^-1/2), ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, N, D] -> q, k, v [B, heads, N, head_dim]."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, D] -> (output [B, N, D], attention [B, heads, N, N])."""
        b, n, d = x.shape
        q, k, v = self.qkv_heads(x)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d)), attn


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, D] -> (x [B, N, D], this block's attention [B, heads, N, N])."""
        out, attn = self.attn(self.norm1(x))
        x = x + out
        return x + self.mlp(self.norm2(x)), attn


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> patch tokens [B, (H/p)*(W/p), D], row-major."""
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """DINO's ViT without a head (the backbone). ``forward`` returns the CLS token after the final
    norm; :meth:`features` every token and the last block's attention; :meth:`last_block_inputs`
    what Betrayed by Attention reads (the last block's keys, see its module)."""

    def __init__(self, cfg: ViTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VIT_VARIANTS["dino-vits16"]
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        """DINO's initialisation: truncated normal (std 0.02) for Linear weights, pos_embed and the
        CLS token, zero biases, LayerNorm 1 / 0 (weights are normally loaded over it)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def interpolate_pos_encoding(self, rows: int, cols: int, square: bool) -> torch.Tensor:
        """The position embedding for a rows x cols patch grid [1, 1 + rows*cols, D] (module
        docstring: DINO's rule, used unchanged for the training grid of a square image)."""
        grid = self.cfg.grid
        if rows * cols == grid * grid and square:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        patches = self.pos_embed[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, scale_factor=((rows + 0.1) / grid, (cols + 0.1) / grid), mode="bicubic")
        if tuple(patches.shape[-2:]) != (rows, cols):
            raise ValueError(f"position embedding resized to {tuple(patches.shape[-2:])}, not {(rows, cols)}")
        return torch.cat([self.pos_embed[:, :1], patches.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)], dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] (H, W multiples of the patch size) -> [CLS | patches] + positions [B, 1 + N, D]."""
        b, _, h, w = x.shape
        p = self.cfg.patch_size
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(x)], dim=1)
        return tokens + self.interpolate_pos_encoding(h // p, w // p, square=h == w)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(every token after the final norm [B, 1 + N, D], the last block's attention [B, heads, 1+N, 1+N])."""
        tokens = self.prepare_tokens(x)
        attn = None
        for block in self.blocks:
            tokens, attn = block(tokens)
        return self.norm(tokens), attn

    def last_block_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the tokens entering the last block [B, 1 + N, D], their LN1-normalised form), for
        methods that read the last block's queries / keys / values."""
        tokens = self.prepare_tokens(x)
        for block in self.blocks[:-1]:
            tokens, _ = block(tokens)
        return tokens, self.blocks[-1].norm1(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The CLS token [B, D] after the final norm (DINO's ``forward`` without a head)."""
        return self.features(x)[0][:, 0]


def dino_frame_size(height: int, width: int, short_side: int = 480) -> tuple[int, int]:
    """DINO's video-segmentation frame size (``eval_video_segmentation.read_frame`` with
    ``scale_size=[short_side]``): the short side becomes ``short_side`` and the long side
    ``int((short_side * long / short) // 64 * 64)`` (a resize that squeezes it to a multiple of 64)."""
    if height < width:
        return short_side, int((short_side * width / height) // 64 * 64)
    return int((short_side * height / width) // 64 * 64), short_side


#: DINO's colour normalisation (``color_normalize``: note 0.228 for red, not ImageNet's 0.229).
DINO_MEAN = (0.485, 0.456, 0.406)
DINO_STD = (0.228, 0.224, 0.225)


def dino_preprocess(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> DINO's input [1, 3, h, w]: cv2 bilinear resize of the uint8 image to
    ``size`` (h, w; default :func:`dino_frame_size`), /255 in float32, minus mean, over std (float32)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    h, w = size or dino_frame_size(*rgb.shape[:2])
    if (h, w) != rgb.shape[:2]:
        rgb = cv2.resize(rgb, (w, h))  # INTER_LINEAR on uint8, as read_frame does
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
    mean = torch.tensor(DINO_MEAN).view(3, 1, 1)
    std = torch.tensor(DINO_STD).view(3, 1, 1)
    return ((x - mean) / std)[None]
