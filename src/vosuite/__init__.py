"""vosuite: video object segmentation toolkit.

Faithful implementations of recent VOS methods, an exact DAVIS / YouTube-VOS evaluator and
fast, bounded-memory CPU inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from vosuite.registry import create_model, list_models

__all__ = ["Discoverer", "Segmenter", "__version__", "create_model", "list_models"]

if TYPE_CHECKING:
    from vosuite.discover import Discoverer
    from vosuite.segment import Segmenter


def __getattr__(name: str) -> Any:
    # lazy: `import vosuite` (and the CLI's --help) must not import torch
    if name == "Segmenter":
        from vosuite.segment import Segmenter

        return Segmenter
    if name == "Discoverer":
        from vosuite.discover import Discoverer

        return Discoverer
    raise AttributeError(f"module 'vosuite' has no attribute {name!r}")
