"""The frozen feature extractor of ``propagate-features`` (label propagation, the evaluation of
self-supervised video features of DINO, Caron et al. 2021, Sec. 4.2 / Appendix, and CRW, Jabri
et al. 2020), and the one place its weights load.

A :class:`FeatureBackbone` maps a frame to a stride-``s`` feature map [1, C, H/s, W/s]:

* a MobileNetV2 (vosuite's DeAOT encoder, :class:`vosuite.nn.mobilenetv2.MobileNetV2`): its
  stride-8 stage, ``encoder(x)[1]`` (32 channels), on ImageNet-normalised frames
  (:func:`~vosuite.inference.preprocess.preprocess_image`); the DeAOT ResNet-50's stride-8 stage
  (512 channels) likewise;
* a DINO ViT (:class:`vosuite.nn.vit.VisionTransformer`): the last block's patch tokens after the
  final norm, as DINO's ``eval_video_segmentation.py`` reads them (stride = the patch size: 16 for
  a ViT/16, 8 for a ViT/8), on DINO-normalised frames (:func:`~vosuite.nn.vit.dino_preprocess`).

:func:`load_feature_backbone` reads ``--checkpoint`` (default: the shipped student's encoder,
``deaot-t-deform``): a vosuite DeAOT checkpoint (its encoder), a training run's ``final.pt`` /
``best.pt`` (a vosuite DeAOT checkpoint) or ``last.pt`` (the live weights' ``encoder.*``, a
MobileNetV2), a ``vosuite convert dino`` backbone file, or a ``vosuite convert imagenet`` encoder
file. Anything else is a one-line :class:`~vosuite.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vosuite.errors import InputError
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.vit import VisionTransformer

#: Stride of a CNN encoder's second stage (``encoder(x)[1]``).
CNN_STRIDE = 8
#: MobileNetV2 blocks up to its stride-8 stage: ``features[:7](x)`` is ``encoder(x)[1]`` (the
#: later stages are not run).
MOBILENETV2_STRIDE8_BLOCKS = 7
_ACCEPTED = ("a vosuite DeAOT checkpoint, a training run's last.pt / final.pt, a `vosuite convert dino` backbone "
             "file or a `vosuite convert imagenet` encoder file")


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

    def preprocess(self, rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """RGB uint8 [H, W, 3] -> the encoder's input [1, 3, h, w] (``size`` = (h, w), multiples of the stride)."""
        if self.is_vit:
            from vosuite.nn.vit import dino_preprocess

            return dino_preprocess(rgb, size)
        from vosuite.inference.preprocess import preprocess_image

        return preprocess_image(rgb, size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """[1, 3, h, w] -> features [1, C, h / stride, w / stride]."""
        if isinstance(self.encoder, MobileNetV2):
            return self.encoder.features[:MOBILENETV2_STRIDE8_BLOCKS](img)
        if not self.is_vit:
            return self.encoder(img)[1]
        rows, cols = img.shape[-2] // self.stride, img.shape[-1] // self.stride
        tokens = self.encoder.features(img)[0][:, 1:]  # [1, rows * cols, D], row-major
        return tokens.transpose(1, 2).reshape(img.shape[0], -1, rows, cols)


def load_feature_backbone(checkpoint: str | Path | None = None) -> FeatureBackbone:
    """The backbone ``--checkpoint`` names (module docstring), in eval mode; None: the shipped
    student's encoder."""
    from vosuite.inference.weights import load_model
    from vosuite.registry import DEFAULT_MODEL

    if checkpoint is None:
        return FeatureBackbone(load_model(DEFAULT_MODEL).encoder, f"{DEFAULT_MODEL} encoder")
    from vosuite.io.checkpoint_file import read_checkpoint

    path = Path(checkpoint)
    obj = read_checkpoint(path)
    kind = obj.get("format") if isinstance(obj, Mapping) else None
    if kind == "vosuite-backbone":
        return _dino_backbone(obj, path)
    if kind == "vosuite-encoder":
        from vosuite.nn.mobilenetv2_checkpoint import read_imagenet_encoder

        return _mobilenetv2(read_imagenet_encoder(path).state_dict, f"{path} (ImageNet encoder)")
    if kind == "vosuite" and _family(obj) == "deaot":
        return FeatureBackbone(load_model(checkpoint=path).encoder, f"{path} (DeAOT encoder)")
    if kind == "vosuite-train" and isinstance(obj.get("model"), Mapping):
        return _run_encoder(obj["model"], path)
    raise InputError(f"--checkpoint {path}: not a backbone propagate-features can use; pass {_ACCEPTED}")


def _family(obj: Mapping) -> str | None:
    info = obj.get("model")
    return info.get("family", "deaot") if isinstance(info, Mapping) else None


def _dino_backbone(obj: Mapping, path: Path) -> FeatureBackbone:
    """A ``vosuite convert dino`` file: the ViT variant it names, loaded strictly."""
    from vosuite.nn.vit_checkpoint import build_vit

    info = obj.get("model")
    name = info.get("name") if isinstance(info, Mapping) else None
    if not isinstance(name, str):
        raise InputError(f"--checkpoint {path}: a backbone file without its ViT name")
    return FeatureBackbone(build_vit(name, path), f"{path} ({name})")


def _run_encoder(state: Mapping, path: Path) -> FeatureBackbone:
    """A training run's ``last.pt``: the live model's ``encoder.*`` tensors as a MobileNetV2."""
    from vosuite.nn.mobilenetv2_checkpoint import check_encoder_state, to_vosuite_layout

    encoder = {key.removeprefix("encoder."): value for key, value in state.items()
               if isinstance(key, str) and key.startswith("encoder.")}
    if not encoder:
        raise InputError(f"--checkpoint {path}: a training checkpoint without an encoder; pass {_ACCEPTED}")
    weights, _ = to_vosuite_layout(encoder, str(path))
    return _mobilenetv2(check_encoder_state(weights, str(path)), f"{path} (run's encoder)")


def _mobilenetv2(state: Mapping[str, torch.Tensor], source: str) -> FeatureBackbone:
    encoder = MobileNetV2()
    encoder.load_state_dict(dict(state), strict=True)
    return FeatureBackbone(encoder, source)


__all__ = ["CNN_STRIDE", "MOBILENETV2_STRIDE8_BLOCKS", "FeatureBackbone", "load_feature_backbone"]
