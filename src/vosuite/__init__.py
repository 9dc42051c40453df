"""vosuite: video object segmentation toolkit.

Faithful implementations of recent VOS methods, an exact DAVIS / YouTube-VOS evaluator and
fast, bounded-memory CPU inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vosuite.version import __version__

__all__ = ["Discoverer", "Segmenter", "__version__", "create_model", "list_models"]

if TYPE_CHECKING:
    from vosuite.factory import create_model, list_models
    from vosuite.segment import Segmenter
    from vosuite.unsupervised.discoverer import Discoverer

#: The public names and the modules that define them, imported on first use: `import vosuite`
#: (and the CLI's --help) must not import torch.
_LAZY = {"Segmenter": "vosuite.segment", "Discoverer": "vosuite.unsupervised.discoverer",
         "create_model": "vosuite.factory", "list_models": "vosuite.factory"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vosuite' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
