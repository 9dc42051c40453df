"""Run logs: ``metrics.jsonl`` (one JSON object per line, a ``kind`` of ``train`` or ``val``) and,
when the ``tensorboard`` package is installed, TensorBoard event files under ``tb/``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vosuite.io.atomic import write_text_atomic

METRICS = "metrics.jsonl"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (a run folder is accepted); a torn last line is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _clean(value: Any) -> Any:
    """JSON-safe: NaN / inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends records to ``<run>/metrics.jsonl`` (and TensorBoard when available).

    ``resume_step``: records after that step (written by a run killed after its last checkpoint)
    are dropped first, so a resumed run's log reads as one uninterrupted run.
    """

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / METRICS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step]
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.writer = _tensorboard_writer(Path(run_dir) / "tb") if tensorboard else None

    def write(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        """Append one record ``{"kind": kind, "step": step, **values}``; flushed at once."""
        record = {"kind": kind, "step": step, **{k: _clean(v) for k, v in values.items()}}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        """Close the TensorBoard writer (if any)."""
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(folder: Path) -> Any | None:
    """A ``SummaryWriter`` when the ``tensorboard`` package is installed, else None."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))
