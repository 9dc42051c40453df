"""Loading DINO ViT weights: official backbone files and full DINO training checkpoints.

Accepted forms (``torch.load(weights_only=True)``):

* a backbone state dict (``dino_deitsmall16_pretrain.pth`` and the like): DINO's key names;
* a training checkpoint (``checkpoint.pth``): ``{"teacher": {...}, "student": {...}, ...}`` whose
  keys carry ``module.`` (DDP) and ``backbone.`` prefixes next to ``head.`` keys (the projection
  head, dropped); ``part`` chooses the teacher (default, what DINO evaluates) or the student;
* a file written by ``vosuite convert dino`` (``format: vosuite-backbone``);
* a vosuite ``method: dino`` run's checkpoint (``final.pt``, ``best.pt``: ``format: vosuite``,
  keys ``teacher.backbone.*`` / ``student.backbone.*``), ``part`` choosing the branch; also its
  resume file ``last.pt`` (the live weights under ``model``), so a run can be used while it trains.

Loading is strict: every backbone key must be there with its shape; a file from which no backbone
weight loads is refused with a one-line error. (The original Betrayed-by-Attention code loads with
``strict=False``, so the checkpoint its README links leaves the backbone silently random.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

from vosuite.checkpoints.files import read_checkpoint
from vosuite.checkpoints.resume import TRAIN_CHECKPOINT_FORMAT
from vosuite.checkpoints.vosuite_format import CHECKPOINT_FORMAT
from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.output import claim_file
from vosuite.nn.vit import VIT_VARIANTS, VisionTransformer, ViTConfig

BACKBONE_FORMAT = "vosuite-backbone"
PARTS = ("teacher", "student")
_PREFIXES = ("module.", "backbone.")


def backbone_state(obj: object, source: str, part: str = "teacher") -> dict[str, torch.Tensor]:
    """The backbone tensors inside a loaded DINO file (see the module docstring), prefixes stripped,
    projection-head keys dropped."""
    if part not in PARTS:
        raise InputError(f"--part {part!r}: use teacher or student")
    if isinstance(obj, Mapping) and obj.get("format") in (BACKBONE_FORMAT, CHECKPOINT_FORMAT):
        obj = obj.get("state_dict")
    elif isinstance(obj, Mapping) and obj.get("format") == TRAIN_CHECKPOINT_FORMAT:
        obj = obj.get("model")
    elif isinstance(obj, Mapping) and part in obj and isinstance(obj[part], Mapping):
        obj = obj[part]
    if isinstance(obj, Mapping) and any(str(key).startswith(f"{part}.") for key in obj):
        obj = {str(key)[len(part) + 1:]: value for key, value in obj.items() if str(key).startswith(f"{part}.")}
    if not isinstance(obj, Mapping):
        raise InputError(f"{source}: no state dict found")
    state = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue
        key = str(key)
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        if not key.startswith("head."):
            state[key] = value
    return state


def load_vit(model: VisionTransformer, path: str | Path, part: str = "teacher") -> VisionTransformer:
    """Load a DINO file into ``model`` strictly; InputError naming the file when nothing or not
    everything fits."""
    path = Path(path)
    state = backbone_state(read_checkpoint(path), str(path), part)
    own = model.state_dict()
    matching = [k for k in own if k in state and tuple(state[k].shape) == tuple(own[k].shape)]
    if not matching:
        raise InputError(f"{path}: no {model.cfg.name} backbone weight in this file (is it a DINO checkpoint "
                         f"of this variant?); it would leave the backbone random")
    missing = sorted(set(own) - set(matching))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputError(f"{path} does not fit {model.cfg.name}: {len(missing)} missing or mis-shaped keys "
                         f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()


def build_vit(name: str = "dino-vits16", checkpoint: str | Path | None = None, part: str = "teacher"
              ) -> VisionTransformer:
    """A DINO ViT by name (``dino-vits16``, ``dino-vits8``, ``dino-vitb16``, ``dino-vitb8``), with weights."""
    key = name.lower().replace("_", "-")
    if key not in VIT_VARIANTS:
        raise InputError(f"unknown ViT {name!r}; known: {', '.join(VIT_VARIANTS)}")
    model = VisionTransformer(VIT_VARIANTS[key])
    return load_vit(model, checkpoint, part) if checkpoint is not None else model.eval()


def save_vit(model: VisionTransformer, out: str | Path) -> Path:
    """Write a backbone as a vosuite backbone file, atomically."""
    payload = {"format": BACKBONE_FORMAT, "version": 1,
               "model": {"name": model.cfg.name, "config": dataclasses.asdict(model.cfg)},
               "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    with atomic_path(Path(out), suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return Path(out)


def convert_dino(checkpoint: str | Path, out: str | Path, name: str = "dino-vits16", part: str = "teacher",
                 overwrite: bool = False) -> Path:
    """``vosuite convert dino``: an official DINO file -> a vosuite backbone file (strict keys)."""
    out = claim_file(out, overwrite=overwrite, inputs=(checkpoint,), option="OUT")
    return save_vit(build_vit(name, checkpoint, part), out)


__all__ = ["ViTConfig", "backbone_state", "build_vit", "convert_dino", "load_vit", "save_vit"]
