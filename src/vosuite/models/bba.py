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

The frozen DINO encoder (:class:`vosuite.nn.vit.VisionTransformer`, ``encoder.*``; ViT-S/8 as in
the original) gives those inputs (:meth:`BetrayedByAttention.encode`); ``backbone=None`` builds
the block alone (the fixture's 11 keys).

**A convolutional backbone** (``bba-mnv2``, a vosuite departure from the paper): the tokens are a
frozen MobileNetV2's stride-16 features (stage ``cnn_stage``: 96 channels at stage 2) instead of a
ViT's last-block keys, and the CLS slot is their spatial mean. The paper's premise is that a
pretrained backbone's features carry objectness which one spatio-temporal block and clustering
reveal; DINO weights cannot be had here, an ImageNet MobileNetV2 can (and the shipped student's
encoder was fine-tuned from it), so the premise is tested on it. The block's own query / key
projections read the features directly: no extra projection. ``backbone`` (the ViT) is then None.

Image normalisation differs between the original's training (ImageNet mean / std) and its
evaluation (``eval_oneshot``: mean 0.43216, 0.394666, 0.37645, std 0.22803, 0.22145, 0.216989);
``normalization`` picks one (default ``"eval"``: what the paper's numbers were computed with).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vosuite.models.variants import lookup_variant
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.st_block import SpatioTemporalBlock
from vosuite.nn.vit import VIT_VARIANTS, VisionTransformer, ViTConfig
from vosuite.registry import Family, register_family, register_model

#: Image normalisations of the original: training (ImageNet) and evaluation (``eval_oneshot``).
NORMALIZATIONS = {
    "train": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "eval": ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)),
}


@dataclass(frozen=True)
class BbAConfig:
    """The ST block of SSL-UVOS (``AttEncoder(num_t=1, path_drop, attn_drop_t)``)."""

    name: str = "bba-vits8"
    dim: int = 384
    num_heads: int = 8
    drop: float = 0.1  # path_drop
    attn_drop: float = 0.4  # attn_drop_t
    num_blocks: int = 1  # num_t
    backbone: ViTConfig | None = VIT_VARIANTS["dino-vits8"]  # None: the block alone, or the CNN below
    normalization: str = "eval"  # "train" (ImageNet) or "eval" (eval_oneshot's), see the module docstring
    cnn: str | None = None  # "mobilenetv2": a convolutional backbone instead of the ViT (module docstring)
    cnn_stage: int = 2  # which of MobileNetV2's four maps (strides 4, 8, 16, 16; 24, 32, 96, 1280 channels)
    tau: float = 1.0  # the discovery clustering's distance threshold by default (the original's: 1.0)

    def __post_init__(self) -> None:
        if self.cnn is not None and (self.backbone is not None or self.cnn != "mobilenetv2"):
            raise ValueError(f"{self.name}: cnn 'mobilenetv2' replaces the ViT backbone (set backbone None)")
        if self.cnn is not None and MOBILENETV2_CHANNELS[self.cnn_stage] != self.dim:
            channels = MOBILENETV2_CHANNELS[self.cnn_stage]
            raise ValueError(f"{self.name}: MobileNetV2 stage {self.cnn_stage} has {channels} channels, the block "
                             f"{self.dim}")

    @property
    def has_backbone(self) -> bool:
        return self.backbone is not None or self.cnn is not None

    @property
    def stride(self) -> int:
        """Pixels per token side: the ViT's patch, or 16 for the MobileNetV2 stride-16 maps."""
        if self.backbone is not None:
            return self.backbone.patch_size
        return CNN_STRIDES[self.cnn_stage]


#: MobileNetV2 (output stride 16) maps: channels and strides.
MOBILENETV2_CHANNELS = (24, 32, 96, 1280)
CNN_STRIDES = (4, 8, 16, 16)


#: The registered variants (backbone patch size 8 as in the original, or 16).
BBA_VARIANTS: dict[str, BbAConfig] = {
    "bba-vits8": BbAConfig("bba-vits8", backbone=VIT_VARIANTS["dino-vits8"]),
    "bba-vits16": BbAConfig("bba-vits16", backbone=VIT_VARIANTS["dino-vits16"]),
    "bba-vitt16": BbAConfig("bba-vitt16", dim=192, backbone=VIT_VARIANTS["dino-vitt16"]),  # a CPU-sized backbone
    "bba-mnv2": BbAConfig("bba-mnv2", dim=96, backbone=None, normalization="train", cnn="mobilenetv2", cnn_stage=2),
}


def get_bba_config(name: str) -> BbAConfig:
    return lookup_variant(BBA_VARIANTS, name, "Betrayed-by-Attention variant")


@dataclass(frozen=True)
class STOutput:
    """The block's tokens [B, T, 1+hw, C], the slots [B, T, hw, C] and attn_temporal [B, T*hw, T*hw]."""

    tokens: torch.Tensor
    slots: torch.Tensor
    attn_temporal: torch.Tensor
    attention: torch.Tensor  # per head, with CLS [B, heads, T*(1+hw), T*(1+hw)]


class BetrayedByAttention(nn.Module):
    """The trainable part of Betrayed by Attention: the spatio-temporal block(s) (``temporal_transformer``)."""

    family = "bba"

    def __init__(self, cfg: BbAConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or BbAConfig()
        #: internal resolution (short side) default of discovery; set from a checkpoint
        self.default_size: int | None = None
        if cfg.backbone is not None:
            self.encoder = VisionTransformer(cfg.backbone).requires_grad_(False)
        elif cfg.cnn is not None:
            self.encoder = MobileNetV2(output_stride=16).requires_grad_(False)
        self.temporal_transformer = nn.ModuleList(
            SpatioTemporalBlock(cfg.dim, cfg.num_heads, drop=cfg.drop, attn_drop=cfg.attn_drop)
            for _ in range(cfg.num_blocks))

    @property
    def block(self) -> SpatioTemporalBlock:
        return self.temporal_transformer[0]

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in 0..1 [N, 3, H, W] -> normalised with ``cfg.normalization``'s mean and std."""
        mean, std = NORMALIZATIONS[self.cfg.normalization]
        return (rgb - rgb.new_tensor(mean).view(1, 3, 1, 1)) / rgb.new_tensor(std).view(1, 3, 1, 1)

    @property
    def stride(self) -> int:
        return self.cfg.stride

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images [N, 3, H, W] -> (the DINO last block's attention keys [N, C, h, w],
        channels head-major, with the qkv bias; the last block's output CLS token [N, C], no final norm).
        A MobileNetV2 backbone gives its stage's map [N, C, H/16, W/16] and its spatial mean."""
        if self.cfg.cnn is not None:
            features = self.encoder(images)[self.cfg.cnn_stage]  # [N, C, h, w]
            return features, features.mean(dim=(2, 3))
        encoder = self.encoder
        tokens, normed = encoder.last_block_inputs(images)
        last = encoder.blocks[-1]
        keys = last.attn.qkv_heads(normed)[1]  # [N, heads, 1 + hw, d]
        n, heads, length, d = keys.shape
        keys = keys.transpose(1, 2).reshape(n, length, heads * d)[:, 1:]  # [N, hw, C] head-major
        cls = last(tokens)[0][:, 0]  # [N, C]
        p = encoder.cfg.patch_size
        h, w = images.shape[-2] // p, images.shape[-1] // p
        return keys.transpose(1, 2).reshape(n, -1, h, w), cls

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


register_family(Family("bba", network="vosuite.models.bba:BetrayedByAttention",
                       config="vosuite.models.bba:get_bba_config", config_class="vosuite.models.bba:BbAConfig",
                       task="unsupervised"))
register_model("bba-vits8", "bba", summary="Betrayed by Attention: DINO ViT-S/8 + spatio-temporal block (unsupervised)")
register_model("bba-vits16", "bba", recipe="configs/bba_vits16_davis16.yaml",
               summary="Betrayed by Attention on DINO ViT-S/16 (unsupervised)")
register_model("bba-vitt16", "bba", recipe="configs/bba_vitt16_davis16.yaml",
               summary="Betrayed by Attention on a DINO ViT-Ti/16 (unsupervised, CPU-sized)")
register_model("bba-mnv2", "bba", recipe="configs/bba_mnv2_davis16.yaml",
               summary="Betrayed by Attention on the student's MobileNetV2 encoder (unsupervised; not the paper's ViT)")
