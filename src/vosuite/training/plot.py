"""``vosuite plot-log RUN [RUN ...]``: training loss and validation J&F curves of runs, as a PNG (matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.output import claim_file
from vosuite.plotting import pyplot
from vosuite.training.run_log import METRICS, read_metrics

LOSS_KEYS = ("loss", "pred_loss", "aux_loss")
VAL_KEY = "J&F-Mean"
#: the x axis: optimiser steps, or training clips seen (steps x the run's train.batch_size)
X_AXES = ("step", "clips")


def _series(records: list[dict[str, object]], kind: str, key: str, per_step: int = 1) -> tuple[list[int], list[float]]:
    """(x, value) of every ``kind`` record holding ``key``; x = step x ``per_step``."""
    points = [(int(r["step"]) * per_step, float(r[key])) for r in records
              if r.get("kind") == kind and isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _batch_size(run: Path) -> int:
    """``train.batch_size`` of the run's config.yaml."""
    from vosuite.training.config import load_config

    return int(load_config(run / "config.yaml").train.batch_size)


def _smoothed(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` logged points (1: the values as logged)."""
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def _records(run: Path) -> list[dict[str, object]]:
    if not (run / METRICS).is_file():
        raise InputError(f"{run}: no {METRICS} (is it a training run folder?)")
    return read_metrics(run)


def plot_log(run: str | os.PathLike | list[str | os.PathLike], out: str | os.PathLike | None = None,
             smooth: int = 1, names: list[str] | None = None, keys: list[str] | None = None,
             overwrite: bool = False, x_axis: str = "step", baselines: dict[str, float] | None = None) -> Path:
    """Draw loss curves (and J&F when validated) into ``out`` (default ``<run>/curves.png``).

    One run: each of its loss terms. Several runs (``out`` required): each run's total loss and
    validation J&F on shared axes, labelled by ``names`` (default: the run folder names).
    ``smooth``: trailing moving average over that many logged loss points. ``keys``: the logged
    training values to draw instead (e.g. DINO's ``teacher_entropy student_entropy max_entropy``),
    each of every run; a key no run logged is an error. ``out`` follows the output rule
    (:func:`vosuite.io.output.claim_file`): an existing file is replaced only with ``overwrite``
    or when vosuite wrote it (a run's own ``curves.png``); never a run's log or config.
    ``x_axis``: ``"step"``, or ``"clips"`` (training clips seen: steps x each run's batch size, to
    compare runs with different batches). ``baselines``: label -> J&F drawn as dashed horizontal
    lines on the validation panel (e.g. flow and copy-first on the same videos).
    """
    runs = [Path(r) for r in (run if isinstance(run, list) else [run])]
    if smooth < 1:
        raise InputError(f"--smooth must be at least 1, not {smooth}")
    if len(runs) > 1 and out is None:
        raise InputError("plot-log: --out FILE.png is needed with several runs")
    if x_axis not in X_AXES:
        raise InputError(f"--x: {' or '.join(X_AXES)}, not {x_axis!r}")
    names = names or [r.name for r in runs]
    if len(names) != len(runs):
        raise InputError(f"--names: {len(names)} names for {len(runs)} runs")
    records = [_records(r) for r in runs]
    per_step = [_batch_size(r) if x_axis == "clips" else 1 for r in runs]
    missing = [key for key in keys or [] if not any(_series(rows, "train", key)[1] for rows in records)]
    if missing:
        raise InputError(f"--keys: no run logged {', '.join(missing)}")
    target = Path(out) if out is not None else runs[0] / "curves.png"
    logs = [path for r in runs for path in (r / "metrics.jsonl", r / "config.yaml")]
    claim_file(target, overwrite=overwrite, inputs=logs, option="--out")
    plt = pyplot("plot-log")
    validated = any(_series(rows, "val", VAL_KEY)[1] for rows in records)
    fig, axes = plt.subplots(1, 2 if validated else 1, figsize=(11 if validated else 6, 4), squeeze=False)
    for name, rows, scale in zip(names, records, per_step, strict=True):
        drawn = keys or (LOSS_KEYS if len(runs) == 1 else LOSS_KEYS[:1])
        for key in drawn:
            steps, values = _series(rows, "train", key, scale)
            if values:
                label = key if len(runs) == 1 else (f"{name} {key}" if keys else name)
                axes[0, 0].plot(steps, _smoothed(values, smooth), label=label)
        steps_jf, jf = _series(rows, "val", VAL_KEY, scale)
        if jf:
            axes[0, 1].plot(steps_jf, jf, marker="o", label=name)
    what = "training log" if keys else "training loss"
    title = f"{runs[0].name}: {what}" if len(runs) == 1 else what
    quantity = "logged value" if keys else "loss"
    xlabel = "training clips seen" if x_axis == "clips" else "step"
    axes[0, 0].set(xlabel=xlabel, ylabel=quantity + (f" (mean of {smooth} logs)" if smooth > 1 else ""), title=title)
    axes[0, 0].legend(fontsize=8)
    if validated:
        for index, (label, value) in enumerate((baselines or {}).items()):
            axes[0, 1].axhline(value, linestyle="--", color=f"C{len(runs) + index}", label=f"{label} ({value:.3f})")
        axes[0, 1].set(xlabel=xlabel, ylabel=VAL_KEY, title="validation J&F", ylim=(0, 1))
        if len(runs) > 1 or baselines:
            axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return target
