"""Int8 storage of shipped weights: symmetric, per output channel, dequantised on load.

A shipped checkpoint may hold, besides its float16 ``state_dict``, an ``int8_weights`` entry::

    {"int8_weights": {"scheme": "int8-symmetric-per-output-channel",
                      "tensors": {name: {"values": int8 [C_out, ...], "scale": float16 [C_out]}}}}

Each tensor ``w`` of at least :data:`MIN_ELEMENTS` numbers and two or more dimensions (convolution
and linear weights) is stored as ``values = round(w / scale)`` clamped to [-127, 127], with
``scale = max |w[c]| / 127`` per output channel ``c`` (rounded up to float16 first, so the stored
scale is the one the values were computed with and no value is clipped). Loading multiplies back: the error of every
number is at most half its channel's scale. Biases, normalisation statistics and small tensors
stay float16. This halves a float16 file (the teacher: 26.6 -> 13.6 MB); the teacher's scores did
not move (docs/benchmarks.md, "The shipped teacher"), but a student's int8 MobileNetV2 encoder cost
it 0.024 dev J&F, so the students keep their encoders float16 (``keep``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vosuite.errors import InputError

SCHEME = "int8-symmetric-per-output-channel"
#: Tensors smaller than this stay float16 (their int8 copy would save little and cost accuracy).
MIN_ELEMENTS = 1024
LEVELS = 127


def quantizable(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and tensor.dim() >= 2 and tensor.numel() >= MIN_ELEMENTS


def quantize_tensor(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """``weight`` [C_out, ...] -> {"values": int8 [C_out, ...], "scale": float16 [C_out]}."""
    flat = weight.detach().double().reshape(weight.shape[0], -1)  # [C_out, K]
    peak = flat.abs().amax(dim=1)  # [C_out]
    scale = torch.where(peak > 0, peak / LEVELS, torch.ones_like(peak)).half()
    # round the float16 scale up where it fell below peak / 127, so that no value needs clamping
    scale = torch.where(scale.double() * LEVELS < peak, torch.nextafter(scale, torch.full_like(scale, torch.inf)),
                        scale)
    values = torch.round(flat / scale.double()[:, None]).clamp(-LEVELS, LEVELS)
    return {"values": values.to(torch.int8).reshape(weight.shape), "scale": scale}


def dequantize_tensor(entry: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The float32 tensor an :func:`quantize_tensor` entry stands for."""
    values, scale = entry["values"], entry["scale"]
    shape = (values.shape[0],) + (1,) * (values.dim() - 1)
    return values.float() * scale.float().reshape(shape)


def quantize_state_dict(state: Mapping[str, torch.Tensor], keep: tuple[str, ...] = ()
                        ) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``state`` into (the float16 / non-float rest, the ``int8_weights`` entry); tensors
    whose names start with a prefix in ``keep`` stay float16 (the students keep ``encoder.``:
    int8 MobileNetV2 weights cost one of them 0.024 dev J&F, docs/benchmarks.md)."""
    chosen = {name for name, t in state.items() if quantizable(t) and not name.startswith(keep)}
    rest = {name: (t.half() if t.is_floating_point() else t) for name, t in state.items() if name not in chosen}
    tensors = {name: quantize_tensor(state[name]) for name in chosen}
    return rest, {"scheme": SCHEME, "tensors": tensors}


def merge_int8_weights(state: Mapping[str, torch.Tensor], entry: object, source: str) -> dict[str, torch.Tensor]:
    """``state`` plus the dequantised tensors of a checkpoint's ``int8_weights`` entry."""
    if not isinstance(entry, Mapping) or entry.get("scheme") != SCHEME or not isinstance(entry.get("tensors"), Mapping):
        raise InputError(f"{source}: int8_weights is not {SCHEME!r} data (upgrade vosuite?)")
    overlap = sorted(set(state) & set(entry["tensors"]))
    if overlap:
        raise InputError(f"{source}: {overlap[0]} is stored both as int8 and in the state dict")
    return {**state, **{name: dequantize_tensor(_checked_entry(name, value, source))
                        for name, value in entry["tensors"].items()}}


def _checked_entry(name: str, entry: object, source: str) -> Mapping[str, torch.Tensor]:
    """An int8 tensor entry whose parts have the layout :func:`quantize_tensor` writes."""
    values = entry.get("values") if isinstance(entry, Mapping) else None
    scale = entry.get("scale") if isinstance(entry, Mapping) else None
    if not (isinstance(values, torch.Tensor) and isinstance(scale, torch.Tensor) and values.dtype == torch.int8
            and values.dim() >= 1 and scale.is_floating_point() and tuple(scale.shape) == (values.shape[0],)):
        raise InputError(f"{source}: int8 tensor {name} is damaged (int8 values [C, ...] and a scale [C] expected)")
    return entry
