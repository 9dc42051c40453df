"""Training methods: one folder per method, registered here in one line each.

A method (:class:`~vosuite.training.methods.base.Method`) declares its typed config section (its
``Options`` dataclass, read from the YAML section named after the method), builds its model and
its data, may hold frozen auxiliary networks (a teacher), computes the loss of a batch, and names
its validation task. The shared :class:`~vosuite.training.engine.Trainer` does the rest.

Methods are imported only when used (``vosuite --help`` stays fast and no cycle can form).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vosuite.errors import InputError

if TYPE_CHECKING:
    from vosuite.training.methods.base import Method

#: Method name -> ``module:class``. A new method: one line here, its files in one folder.
METHODS: dict[str, str] = {
    "deaot": "vosuite.training.methods.deaot.method:DeAOTMethod",
    "s2s": "vosuite.training.methods.s2s.method:S2SMethod",
    "distill": "vosuite.training.methods.distill.method:DistillMethod",
    "bba": "vosuite.training.methods.bba.method:BbAMethod",
    "dino": "vosuite.training.methods.dino.method:DINOMethod",
}


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``; an unknown name is an InputError listing the known ones."""
    if name not in METHODS:
        raise InputError(f"method: unknown training method {name!r}; known: {', '.join(METHODS)}")
    module, _, attribute = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def list_methods() -> list[str]:
    return list(METHODS)
