"""``vosuite convert aot`` and ``vosuite convert half``: whole-model conversions, built and checked
by :mod:`vosuite.factory` and written in vosuite's format (:mod:`vosuite.checkpoints.vosuite_format`).
DINO and ImageNet backbones convert in :mod:`vosuite.checkpoints.dino` and
:mod:`vosuite.checkpoints.imagenet`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vosuite.checkpoints.files import read_checkpoint
from vosuite.checkpoints.state_dict import extract_state_dict
from vosuite.checkpoints.vosuite_format import StorageOptions, is_vosuite_checkpoint
from vosuite.errors import InputError
from vosuite.factory import create_model, save_model
from vosuite.io.output import claim_file
from vosuite.options import DEFAULT_MODEL
from vosuite.registry import FAMILIES, get_spec

_NO_STORAGE = StorageOptions()

def half_checkpoint(checkpoint: str | Path, out: str | Path, inference_size: int | None = None,
                    overwrite: bool = False, storage: StorageOptions = _NO_STORAGE) -> Path:
    """A vosuite checkpoint's float16 copy at ``out`` (the form shipped weights take), with
    ``inference_size`` recorded when given (else the checkpoint's); ``storage``: int8 and shared
    tensors (its dtype is float16 whatever is given)."""
    if inference_size is not None and inference_size <= 0:
        raise InputError(f"--size {inference_size}: must be a positive number of pixels")
    src, out = Path(checkpoint), Path(out)
    claim_file(out, overwrite=overwrite, inputs=(src,), option="OUT")
    if not is_vosuite_checkpoint(read_checkpoint(src)):
        raise InputError(f"{src} is not a vosuite checkpoint (convert it first: `vosuite convert aot`)")
    storage = StorageOptions(torch.float16, storage.int8, storage.int8_keep, storage.share_from, storage.share_prefixes)
    return save_model(create_model(weights=src), out, inference_size=inference_size, storage=storage)


@dataclass(frozen=True)
class ConversionReport:
    model: str
    tensors: int
    numbers: int
    out: Path


def convert_aot(checkpoint: str | Path, out: str | Path, model: str = DEFAULT_MODEL,
                overwrite: bool = False) -> ConversionReport:
    """aot-benchmark checkpoint (state dict, ``state_dict`` / ``ema`` wrappers, ``module.``
    prefixes) -> clean vosuite checkpoint at ``out``. Missing, unexpected or mis-shaped keys are
    an InputError naming them."""
    src, out = Path(checkpoint), Path(out)
    claim_file(out, overwrite=overwrite, inputs=(src,), option="OUT")
    spec = get_spec(model)
    if FAMILIES[spec.family].converter != "aot":
        raise InputError(f"`convert aot` reads aot-benchmark DeAOT checkpoints; {spec.name} is not a DeAOT variant")
    obj = read_checkpoint(src)
    if is_vosuite_checkpoint(obj):
        raise InputError(f"{src} is already a vosuite checkpoint")
    if not extract_state_dict(obj, str(src)):
        raise InputError(f"{src}: the checkpoint holds no tensors")
    del obj
    try:
        net = create_model(spec.architecture, weights=src)  # strict key check
    except InputError as error:
        raise InputError(f"{error} (is --model {spec.name} the checkpoint's variant?)") from None
    save_model(net, out)
    own = net.state_dict()
    return ConversionReport(model=spec.architecture, tensors=len(own), numbers=sum(v.numel() for v in own.values()),
                            out=out)
