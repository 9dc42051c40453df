"""DINO self-distillation pre-training networks (Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", arXiv 2104.14294; code facebookresearch/dino).

A student and a teacher of the same architecture: a ViT backbone (:mod:`vosuite.nn.vit`, the
CLS token after the final norm) and the projection head of Sec. 3.1 / Appendix C: a 3-layer MLP
(hidden 2048, GELU, no batch norm for ViTs) to a 256-d bottleneck, l2-normalised, then a
weight-normalised linear layer to K dimensions without bias, its norm fixed to 1
(``norm_last_layer=True``, the default for ViT-S). The teacher gets no gradient: it follows the
student as an exponential moving average (:mod:`vosuite.training.methods.dino`). The centre
``C`` of Eq. (4) is a buffer of the pair, so it is saved and resumed with it.

A trained pair's teacher backbone is what Betrayed by Attention reads: ``bba.dino_checkpoint``
and ``vosuite convert dino`` accept the run's ``final.pt`` (:mod:`vosuite.checkpoints.dino`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vosuite.models.variants import lookup_variant
from vosuite.nn.vit import VIT_VARIANTS, VisionTransformer, ViTConfig
from vosuite.registry import Family, register_family, register_model


@dataclass(frozen=True)
class DINOConfig:
    """The pair: backbone variant and head sizes (DINO's defaults but ``out_dim``)."""

    name: str = "dino-pretrain-vits16"
    backbone: ViTConfig = VIT_VARIANTS["dino-vits16"]
    out_dim: int = 4096  # K (DINO: 65536 for ImageNet; smaller for a few thousand frames, Appendix D)
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    norm_last_layer: bool = True


DINO_VARIANTS: dict[str, DINOConfig] = {
    "dino-pretrain-vitt16": DINOConfig("dino-pretrain-vitt16", VIT_VARIANTS["dino-vitt16"]),
    "dino-pretrain-vits16": DINOConfig("dino-pretrain-vits16", VIT_VARIANTS["dino-vits16"]),
    "dino-pretrain-vits8": DINOConfig("dino-pretrain-vits8", VIT_VARIANTS["dino-vits8"]),
}


def get_dino_config(name: str) -> DINOConfig:
    return lookup_variant(DINO_VARIANTS, name, "DINO pre-training variant")


class DINOHead(nn.Module):
    """MLP -> l2 normalisation -> weight-normalised linear (DINO's ``DINOHead``, Appendix C)."""

    def __init__(self, in_dim: int, cfg: DINOConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, cfg.hidden_dim), nn.GELU(),
                                 nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.GELU(),
                                 nn.Linear(cfg.hidden_dim, cfg.bottleneck_dim))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        # weight normalisation written out: weight = g * v / ||v|| (rows), g fixed to 1 when norm_last_layer
        self.last_direction = nn.Parameter(torch.empty(cfg.out_dim, cfg.bottleneck_dim))
        nn.init.kaiming_uniform_(self.last_direction, a=math.sqrt(5))  # nn.Linear's: DINO wraps a fresh Linear
        self.last_gain = nn.Parameter(torch.ones(cfg.out_dim, 1), requires_grad=not cfg.norm_last_layer)

    def last_layer_weight(self) -> torch.Tensor:
        """[K, bottleneck]: every row the direction's unit vector times its gain."""
        return self.last_gain * F.normalize(self.last_direction, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, K] (logits before the temperature)."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return F.linear(x, self.last_layer_weight())


class DINOBranch(nn.Module):
    """Backbone + head: images [B, 3, h, w] -> [B, K]."""

    def __init__(self, cfg: DINOConfig) -> None:
        super().__init__()
        self.backbone = VisionTransformer(cfg.backbone)
        self.head = DINOHead(cfg.backbone.embed_dim, cfg)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def multi_crop(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Outputs [sum B_i, K] of crops of several resolutions, one backbone pass per resolution
        (DINO's ``MultiCropWrapper``: consecutive crops of equal size run together)."""
        outputs, start = [], 0
        while start < len(crops):
            end = start
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            outputs.append(self.backbone(torch.cat(crops[start:end])))
            start = end
        return self.head(torch.cat(outputs))


class DINOPretraining(nn.Module):
    """Student and teacher (same weights at the start; the teacher never trains by gradient)."""

    family = "dino"

    def __init__(self, cfg: DINOConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DINO_VARIANTS["dino-pretrain-vits16"]
        self.student = DINOBranch(cfg)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, cfg.out_dim))
        self.default_size: int | None = None

    def train(self, mode: bool = True) -> DINOPretraining:
        super().train(mode)
        self.teacher.eval()  # DINO's teacher has no dropout or batch norm to switch; kept in eval all the same
        return self

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student (Eq. 2's EMA, every parameter)."""
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
            teacher.mul_(momentum).add_(student.detach(), alpha=1 - momentum)


register_family(Family("dino", network="vosuite.models.dino:DINOPretraining",
                       config="vosuite.models.dino:get_dino_config",
                       config_class="vosuite.models.dino:DINOConfig", task="pre-training"))
register_model("dino-pretrain-vitt16", "dino", recipe="configs/dino_vitt16_davis16.yaml",
               summary="DINO pre-training: ViT-Ti/16 student + momentum teacher")
register_model("dino-pretrain-vits16", "dino", recipe="configs/dino_vits16_davis16.yaml",
               summary="DINO pre-training: ViT-S/16 student + momentum teacher")
register_model("dino-pretrain-vits8", "dino", summary="DINO pre-training: ViT-S/8 student + momentum teacher")
