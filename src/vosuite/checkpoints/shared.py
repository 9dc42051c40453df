"""Shipped weights that share frozen tensors with another shipped model's file.

A variant fine-tuned with part of a shipped model frozen (``model.frozen_prefixes``, e.g. the
fast student's ``encoder.``) need not store that part again. Its checkpoint then holds::

    {"shared_weights": {"model": "deaot-t-deform", "sha256": <that file's sha256>,
                        "prefixes": ["encoder."]}}

and a state dict without the tensors under ``prefixes``; loading takes them from the named model's
shipped file (``weights/<model>.pt``), which must still be the file whose sha256 was recorded (a later re-release of
that model would silently change this one). :func:`split_shared` checks, when writing, that the
tensors left out are exactly the other model's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vosuite.errors import InputError


def _equal_as_stored(mine: torch.Tensor, other: torch.Tensor) -> bool:
    """Equal once stored: floating tensors rounded to float16, others exactly."""
    if mine.is_floating_point():
        return torch.equal(mine.half(), other.half())
    return torch.equal(other.to(mine.dtype), mine)


def split_shared(state: Mapping[str, torch.Tensor], model_name: str, prefixes: tuple[str, ...],
                 theirs: Mapping[str, torch.Tensor], digest: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(``state`` without the tensors under ``prefixes``, the ``shared_weights`` entry). An
    InputError when a left-out tensor differs from ``model_name``'s (``theirs``, from the file of
    sha256 ``digest``; it trained). Floating tensors
    are compared at float16, the precision shipped files store them in: a float32 checkpoint
    whose frozen part came from the same float32 weights as the other file matches it."""
    if not prefixes:
        raise InputError("--share-from needs at least one --share-prefix")
    shared = [name for name in state if name.startswith(prefixes)]
    if not shared:
        raise InputError(f"--share-prefix {', '.join(prefixes)}: no tensor of the checkpoint starts with it")
    for name in shared:
        mine = state[name].detach().cpu()
        other = theirs.get(name)
        if other is None or other.shape != mine.shape or not _equal_as_stored(mine, other):
            raise InputError(f"{name} differs from {model_name}'s: only tensors frozen in training can be shared")
    rest = {name: t for name, t in state.items() if name not in shared}
    return rest, {"model": model_name, "sha256": digest, "prefixes": list(prefixes)}


def checked_entry(entry: object, source: str) -> Mapping:
    """A ``shared_weights`` entry with the fields :func:`split_shared` writes; InputError otherwise."""
    if not (isinstance(entry, Mapping) and isinstance(entry.get("model"), str) and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("prefixes"), list) and entry["prefixes"]):
        raise InputError(f"{source}: shared_weights is damaged (model, sha256 and prefixes expected)")
    return entry


def merge_shared(state: Mapping[str, torch.Tensor], entry: Mapping, theirs: Mapping[str, torch.Tensor],
                 digest: str, source: str) -> dict[str, torch.Tensor]:
    """``state`` plus the tensors a checked ``shared_weights`` entry names, taken from ``theirs`` (the
    other model's float32 state, read from a file of sha256 ``digest``)."""
    if digest != entry["sha256"]:
        raise InputError(f"{source}: shares tensors with {entry['model']}'s weights of sha256 "
                         f"{entry['sha256'][:12]}..., but the installed file is {digest[:12]}... "
                         "(install the matching vosuite)")
    prefixes = tuple(entry["prefixes"])
    shared = {name: t for name, t in theirs.items() if name.startswith(prefixes)}
    overlap = sorted(set(shared) & set(state))
    if overlap:
        raise InputError(f"{source}: {overlap[0]} is stored and shared at once")
    return {**state, **shared}
