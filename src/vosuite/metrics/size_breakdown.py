"""J and F by object size: every scored (object, frame) pair falls in a bin of its ground-truth area.

The DAVIS protocol averages per object over frames; it says nothing about how a method copes with
small objects. This breakdown pools the per-frame J and F of all objects and groups them by the
object's ground-truth area on that frame, as a fraction of the frame's pixels (so the bins mean the
same at 240p and 480p). Frames where the object is absent form their own bin: there J and F are 1
for an empty prediction and 0 otherwise.

The default edges are 1 % and 5 % of the frame: at 854x480 that is about 64x64 and 143x143 pixels,
close to COCO's small / medium limits (32^2 and 96^2 pixels at about 640x480) scaled to DAVIS's
larger objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from vosuite.errors import InputError

DEFAULT_EDGES = (0.01, 0.05)  # area fractions between the bins


@dataclass(frozen=True)
class SizeBin:
    """Pooled per-frame scores of one area range ``[low, high)`` (``high`` is ``inf`` for the last)."""

    label: str
    low: float
    high: float
    frames: int  # (object, frame) pairs in the bin
    j_mean: float  # NaN for an empty bin
    f_mean: float

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    def to_dict(self) -> dict[str, object]:
        """Plain JSON: ``null`` for the open upper bound and for the means of an empty bin."""
        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {"label": self.label, "low": self.low, "high": finite(self.high), "frames": self.frames,
                "J-Mean": finite(self.j_mean), "F-Mean": finite(self.f_mean), "J&F-Mean": finite(self.jf_mean)}


def _percent(value: float) -> str:
    return f"{100 * value:g}%"


def bin_labels(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """``absent``, then one label per area range, e.g. ``<1%``, ``1-5%``, ``>=5%``."""
    labels = ["absent", f"<{_percent(edges[0])}"] if edges else ["absent", "present"]
    labels += [f"{_percent(low)}-{_percent(high)}" for low, high in zip(edges[:-1], edges[1:], strict=True)]
    return labels + ([f">={_percent(edges[-1])}"] if edges else [])


def _check_edges(edges: Sequence[float]) -> None:
    if any(not 0 < e < 1 for e in edges) or list(edges) != sorted(set(edges)):
        raise InputError(f"size edges (--size-edges) must be increasing fractions in (0, 1), got {list(edges)}")


def size_breakdown(per_object: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   edges: Sequence[float] = DEFAULT_EDGES) -> list[SizeBin]:
    """Pool ``(J [T], F [T], area fraction [T])`` of every object and average J and F per size bin.

    The first bin holds frames where the object is absent (area 0); the others split present
    objects at ``edges`` (each bin is ``[low, high)``).
    """
    _check_edges(edges)
    j_parts, f_parts, area_parts = [], [], []
    for j_values, f_values, areas in per_object:
        if not len(j_values) == len(f_values) == len(areas):
            raise InputError(f"per-frame J, F and areas differ in length: {len(j_values)}, {len(f_values)}, "
                             f"{len(areas)}")
        j_parts.append(np.asarray(j_values, dtype=np.float64))
        f_parts.append(np.asarray(f_values, dtype=np.float64))
        area_parts.append(np.asarray(areas, dtype=np.float64))
    j_all = np.concatenate(j_parts) if j_parts else np.zeros(0)
    f_all = np.concatenate(f_parts) if f_parts else np.zeros(0)
    area_all = np.concatenate(area_parts) if area_parts else np.zeros(0)
    bounds = [0.0, *edges, np.inf]
    selections = [area_all == 0] + [(area_all > 0) & (area_all >= low) & (area_all < high)
                                    for low, high in zip(bounds[:-1], bounds[1:], strict=True)]
    lows, highs = [0.0, *bounds[:-1]], [0.0, *bounds[1:]]
    return [SizeBin(label, low, high, int(chosen.sum()),
                    float(j_all[chosen].mean()) if chosen.any() else float("nan"),
                    float(f_all[chosen].mean()) if chosen.any() else float("nan"))
            for label, low, high, chosen in zip(bin_labels(edges), lows, highs, selections, strict=True)]


def breakdown_from_objects(objects: Iterable[dict[str, object]],
                           edges: Sequence[float] = DEFAULT_EDGES) -> list[SizeBin] | None:
    """The breakdown of the ``per_object`` entries of a results JSON; None when they lack areas
    (results written before areas were recorded)."""
    rows = list(objects)
    if not rows or any("area_per_frame" not in row for row in rows):
        return None
    return size_breakdown(((row["J_per_frame"], row["F_per_frame"], row["area_per_frame"]) for row in rows),
                          edges)
