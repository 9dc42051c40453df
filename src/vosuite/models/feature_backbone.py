"""The frozen feature extractor of ``propagate-features`` (label propagation, the evaluation of
self-supervised video features of DINO, Caron et al. 2021, Sec. 4.2 / Appendix, and CRW, Jabri
et al. 2020).

A :class:`FeatureBackbone` maps a frame to a stride-``s`` feature map [1, C, H/s, W/s]:

* a MobileNetV2 (vosuite's DeAOT encoder, :class:`vosuite.nn.mobilenetv2.MobileNetV2`): its
  stride-8 stage, ``encoder(x)[1]`` (32 channels), on ImageNet-normalised frames
  (:func:`~vosuite.inference.preprocess.preprocess_image`); the DeAOT ResNet-50's stride-8 stage
  (512 channels) likewise;
* a DINO ViT (:class:`vosuite.nn.vit.VisionTransformer`): the last block's patch tokens after the
  final norm, as DINO's ``eval_video_segmentation.py`` reads them (stride = the patch size: 16 for
  a ViT/16, 8 for a ViT/8), on DINO-normalised frames (:func:`~vosuite.nn.vit.dino_preprocess`).

Its weights load in :func:`vosuite.factory.feature_backbone` (default: the shipped student's encoder).
"""

from __future__ import annotations

import torch
from torch import nn

from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.vit import VisionTransformer

#: Stride of a CNN encoder's second stage (``encoder(x)[1]``).
CNN_STRIDE = 8
#: MobileNetV2 blocks up to its stride-8 stage: ``features[:7](x)`` is ``encoder(x)[1]`` (the
#: later stages are not run).
MOBILENETV2_STRIDE8_BLOCKS = 7


class FeatureBackbone(nn.Module):
    """A frozen encoder read as one feature map per frame (module docstring).

    Args:
        encoder: a DeAOT encoder (list of stage outputs, the second at stride 8) or a DINO ViT.
        source: where its weights came from, for reports.
    """

    def __init__(self, encoder: nn.Module | None = None, source: str = "random") -> None:
        super().__init__()
        self.encoder = (encoder if encoder is not None else MobileNetV2()).eval().requires_grad_(False)
        self.source = source
        self.is_vit = isinstance(self.encoder, VisionTransformer)
        self.stride = self.encoder.cfg.patch_size if self.is_vit else CNN_STRIDE

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """[1, 3, h, w] -> features [1, C, h / stride, w / stride]."""
        if isinstance(self.encoder, MobileNetV2):
            return self.encoder.features[:MOBILENETV2_STRIDE8_BLOCKS](img)
        if not self.is_vit:
            return self.encoder(img)[1]
        rows, cols = img.shape[-2] // self.stride, img.shape[-1] // self.stride
        tokens = self.encoder.features(img)[0][:, 1:]  # [1, rows * cols, D], row-major
        return tokens.transpose(1, 2).reshape(img.shape[0], -1, rows, cols)


__all__ = ["CNN_STRIDE", "MOBILENETV2_STRIDE8_BLOCKS", "FeatureBackbone"]
