"""vosuite: video object segmentation toolkit.

Faithful implementations of recent VOS methods, an exact DAVIS / YouTube-VOS evaluator and
fast, bounded-memory CPU inference.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
