"""Evaluation results: per-object rows, per-sequence and global aggregates, CSV and JSON output."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosuite.io.atomic import write_text_atomic
from vosuite.metrics.size_breakdown import DEFAULT_EDGES, SizeBin, size_breakdown
from vosuite.metrics.statistics import SequenceStatistics

COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


@dataclass
class ObjectResult:
    """One ground-truth object of one sequence, scored over ``frames``."""

    sequence: str
    object_id: int
    frames: list[str]
    j_per_frame: np.ndarray  # [T] float64
    f_per_frame: np.ndarray  # [T] float64
    j: SequenceStatistics
    f: SequenceStatistics
    matched_proposal: int | None = None  # unsupervised protocol: the proposal id picked
    area_per_frame: np.ndarray | None = None  # [T] float64 ground-truth area / frame pixels

    @property
    def key(self) -> str:
        return f"{self.sequence}_{self.object_id}"

    def row(self) -> dict[str, float]:
        return {
            "J&F-Mean": (self.j.mean + self.f.mean) / 2,
            "J-Mean": self.j.mean, "J-Recall": self.j.recall, "J-Decay": self.j.decay,
            "F-Mean": self.f.mean, "F-Recall": self.f.recall, "F-Decay": self.f.decay,
        }


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    """Plain (not NaN-ignoring) mean per column, J&F-Mean from the J and F means."""
    means = {name: float(np.mean([row[name] for row in rows])) if rows else math.nan
             for name in COLUMNS[1:]}
    return {"J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2, **means}


@dataclass
class EvaluationResult:
    task: str
    objects: list[ObjectResult]
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)

    def global_scores(self) -> dict[str, float]:
        """Unweighted means over all objects, as the official ``evaluation_method.py``."""
        return _mean_rows([obj.row() for obj in self.objects])

    def sequences(self) -> list[str]:
        return list(dict.fromkeys(obj.sequence for obj in self.objects))

    def sequence_scores(self) -> dict[str, dict[str, float]]:
        """Per sequence: the mean over its objects (for one object, that object's numbers)."""
        return {name: _mean_rows([obj.row() for obj in self.objects if obj.sequence == name])
                for name in self.sequences()}

    def size_breakdown(self, edges: Sequence[float] = DEFAULT_EDGES) -> list[SizeBin] | None:
        """Pooled per-frame J and F by ground-truth object size (:mod:`size_breakdown`); None
        without recorded areas."""
        if not self.objects or any(obj.area_per_frame is None for obj in self.objects):
            return None
        return size_breakdown(((obj.j_per_frame, obj.f_per_frame, obj.area_per_frame) for obj in self.objects),
                              edges)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["Sequence", *COLUMNS])
        global_row = self.global_scores()
        writer.writerow(["Global", *(f"{global_row[c]:.6f}" for c in COLUMNS)])
        for obj in self.objects:
            row = obj.row()
            writer.writerow([obj.key, *(f"{row[c]:.6f}" for c in COLUMNS)])
        return buffer.getvalue()

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "settings": self.settings,
            "global": self.global_scores(),
            "per_sequence": self.sequence_scores(),
            "per_object": {
                obj.key: {
                    **obj.row(),
                    "sequence": obj.sequence,
                    "object_id": obj.object_id,
                    "matched_proposal": obj.matched_proposal,
                    "frames": obj.frames,
                    "J_per_frame": [float(v) for v in obj.j_per_frame],
                    "F_per_frame": [float(v) for v in obj.f_per_frame],
                    **({"area_per_frame": [float(v) for v in obj.area_per_frame]}
                       if obj.area_per_frame is not None else {}),
                }
                for obj in self.objects
            },
            "by_size": [row.to_dict() for row in self.size_breakdown() or []],
            "warnings": self.warnings,
        }

    def save(self, path: str | Path) -> None:
        """Write ``.csv`` (official columns, one row per object after a Global row) or ``.json``."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            write_text_atomic(path, self.to_csv())
        else:
            write_text_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=True))
