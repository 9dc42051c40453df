"""The one lookup of a registered variant's config by name (``_`` and case ignored)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup_variant(table: Mapping[str, T], name: str, kind: str) -> T:
    """``table[name]`` with ``name`` lower-cased and ``_`` read as ``-``; KeyError listing the known
    names of ``kind`` (e.g. "DeAOT variant") otherwise."""
    key = name.lower().replace("_", "-")
    if key not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(table)}")
    return table[key]
