"""Warm-start a network from another one's weights: every tensor whose name and shape match.

A DeAOT-L teacher and a DeAOT-T student share the MobileNetV2 encoder, its projector, the
decoder, the identity bank and the first propagation layer (same names, same shapes); the
teacher's second and third layers have no counterpart and keep their initialisation. Nothing
here is pretrained on ImageNet, so a trained student's encoder is the best start a teacher can
get on this machine (``model.init_from`` in a training config; measured in docs/benchmarks.md).
This is a vosuite choice, not a step of any paper: the paper's teacher starts from ImageNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vosuite.checkpoints.files import read_checkpoint
from vosuite.checkpoints.state_dict import extract_state_dict
from vosuite.errors import InputError
from vosuite.factory import weights_file
from vosuite.registry import ALIASES, MODELS, canonical_key


@dataclass(frozen=True)
class TransplantReport:
    """What :func:`transplant` copied: tensor names and their element counts."""

    copied: tuple[str, ...]
    copied_elements: int
    total_elements: int  # of the receiving network's state dict

    @property
    def fraction(self) -> float:
        return self.copied_elements / max(self.total_elements, 1)


def source_weights_path(source: str) -> Path:
    """``source`` as a file: a path (``~`` expanded), or a registered model name (its shipped weights,
    sha256 checked)."""
    if canonical_key(source) in MODELS or canonical_key(source) in ALIASES:
        return weights_file(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(f"model.init_from: {source} is neither a file nor a registered model name")
    return path


def transplant(model: nn.Module, source: str, prefixes: tuple[str, ...] = ()) -> TransplantReport:
    """Copy into ``model`` every tensor of ``source`` (file or model name) whose name and shape
    match, restricted to names starting with one of ``prefixes`` (empty: all). Dtypes follow
    ``model`` (a float16 shipped file loads into float32 training weights). Raises InputError when
    nothing matches."""
    path = source_weights_path(source)
    donor = extract_state_dict(read_checkpoint(path), str(path))
    own = model.state_dict()
    names = tuple(sorted(name for name, tensor in donor.items()
                         if name in own and tuple(own[name].shape) == tuple(tensor.shape)
                         and (not prefixes or name.startswith(prefixes))))
    if not names:
        raise InputError(f"model.init_from: {path} shares no tensor (same name and shape) with the network"
                         + (f" under {list(prefixes)}" if prefixes else ""))
    with torch.no_grad():
        for name in names:
            own[name].copy_(donor[name].to(own[name].dtype))
    return TransplantReport(copied=names, copied_elements=sum(own[n].numel() for n in names),
                            total_elements=sum(t.numel() for t in own.values()))
