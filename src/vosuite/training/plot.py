"""``vosuite plot-log RUN``: training loss and validation J&F curves of a run, as a PNG (matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.plotting import pyplot
from vosuite.training.run_log import METRICS, read_metrics

LOSS_KEYS = ("loss", "pred_loss", "aux_loss")
VAL_KEY = "J&F-Mean"


def _series(records: list[dict[str, object]], kind: str, key: str) -> tuple[list[int], list[float]]:
    points = [(int(r["step"]), float(r[key])) for r in records
              if r.get("kind") == kind and isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def plot_log(run: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the run's loss curves (and J&F when validated) into ``out`` (default ``<run>/curves.png``)."""
    run = Path(run)
    if not (run / METRICS).is_file():
        raise InputError(f"{run}: no {METRICS} (is it a training run folder?)")
    plt = pyplot("plot-log")
    records = read_metrics(run)
    steps_jf, jf = _series(records, "val", VAL_KEY)
    fig, axes = plt.subplots(1, 2 if jf else 1, figsize=(11 if jf else 6, 4), squeeze=False)
    for key in LOSS_KEYS:
        steps, values = _series(records, "train", key)
        if values:
            axes[0, 0].plot(steps, values, label=key)
    axes[0, 0].set(xlabel="step", ylabel="loss", title=f"{run.name}: training loss")
    axes[0, 0].legend()
    if jf:
        axes[0, 1].plot(steps_jf, jf, marker="o")
        axes[0, 1].set(xlabel="step", ylabel=VAL_KEY, title="validation J&F", ylim=(0, 1))
    fig.tight_layout()
    target = Path(out) if out is not None else run / "curves.png"
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return target
