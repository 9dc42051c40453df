"""Backbone files that ``propagate-features`` reads (besides a DeAOT checkpoint's encoder, which
:func:`vosuite.factory.feature_backbone` takes from the built network): a ``vosuite convert dino``
ViT, a ``vosuite convert imagenet`` MobileNetV2, or a training run's ``last.pt`` (its live
``encoder.*`` tensors, a MobileNetV2)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vosuite.checkpoints.dino import BACKBONE_FORMAT, build_vit
from vosuite.checkpoints.imagenet import ENCODER_FORMAT, check_encoder_state, read_imagenet_encoder, to_vosuite_layout
from vosuite.checkpoints.resume import TRAIN_CHECKPOINT_FORMAT
from vosuite.errors import InputError
from vosuite.nn.mobilenetv2 import MobileNetV2

ACCEPTED = ("a vosuite DeAOT checkpoint, a training run's last.pt / final.pt, a `vosuite convert dino` backbone "
            "file or a `vosuite convert imagenet` encoder file")


def read_backbone(obj: object, path: Path) -> tuple[nn.Module, str]:
    """(the encoder a loaded backbone file holds, a description of where it came from)."""
    kind = obj.get("format") if isinstance(obj, Mapping) else None
    if kind == BACKBONE_FORMAT:
        return _dino_backbone(obj, path)
    if kind == ENCODER_FORMAT:
        return _mobilenetv2(read_imagenet_encoder(path).state_dict), f"{path} (ImageNet encoder)"
    if kind == TRAIN_CHECKPOINT_FORMAT and isinstance(obj.get("model"), Mapping):
        return _run_encoder(obj["model"], path), f"{path} (run's encoder)"
    raise InputError(f"--checkpoint {path}: not a backbone propagate-features can use; pass {ACCEPTED}")


def _dino_backbone(obj: Mapping, path: Path) -> tuple[nn.Module, str]:
    """A ``vosuite convert dino`` file: the ViT variant it names, loaded strictly."""
    info = obj.get("model")
    name = info.get("name") if isinstance(info, Mapping) else None
    if not isinstance(name, str):
        raise InputError(f"--checkpoint {path}: a backbone file without its ViT name")
    return build_vit(name, path), f"{path} ({name})"


def _run_encoder(state: Mapping, path: Path) -> nn.Module:
    """A training run's ``last.pt``: the live model's ``encoder.*`` tensors as a MobileNetV2."""
    encoder = {key.removeprefix("encoder."): value for key, value in state.items()
               if isinstance(key, str) and key.startswith("encoder.")}
    if not encoder:
        raise InputError(f"--checkpoint {path}: a training checkpoint without an encoder; pass {ACCEPTED}")
    weights, _ = to_vosuite_layout(encoder, str(path))
    return _mobilenetv2(check_encoder_state(weights, str(path)))


def _mobilenetv2(state: Mapping[str, torch.Tensor]) -> MobileNetV2:
    encoder = MobileNetV2()
    encoder.load_state_dict(dict(state), strict=True)
    return encoder
