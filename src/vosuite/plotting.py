"""Matplotlib, imported on demand with the file-only Agg backend (plots are optional extras)."""

from __future__ import annotations

from types import ModuleType

from vosuite.errors import InputError


def pyplot(feature: str) -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend; a one-line error naming ``feature`` without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(f"{feature} needs matplotlib: pip install 'vosuite[plot]'") from None
    return plt
