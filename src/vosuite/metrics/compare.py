"""Side-by-side comparison of evaluation results (the ``.json`` files ``vosuite eval --out`` writes).

One row per run: global J&F, J and F, then mean J and F per object-size bin
(:mod:`vosuite.metrics.size_breakdown`), and optionally per-sequence J&F. A grouped bar chart
shows J and F of every run over all frames and per size bin.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.metrics.report import format_score
from vosuite.metrics.size_breakdown import DEFAULT_EDGES, SizeBin, breakdown_from_objects
from vosuite.plotting import pyplot


@dataclass
class RunScores:
    """What one results file says: global scores, per-sequence scores and the size breakdown."""

    name: str
    global_scores: dict[str, float]
    per_sequence: dict[str, dict[str, float]]
    by_size: list[SizeBin] | None  # None: the file has no per-frame areas
    objects: list[str]  # scored objects, ``<video>_<id>``


def load_run(path: str | Path, name: str | None = None, edges: Sequence[float] = DEFAULT_EDGES) -> RunScores:
    """Read a ``vosuite eval`` results JSON; ``name`` defaults to the file's stem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read results JSON ({error})") from None
    if not isinstance(data, dict) or not {"global", "per_sequence", "per_object"} <= set(data):
        raise InputError(f"{path}: not a results file of `vosuite eval --out FILE.json`")
    try:
        scores = {key: float(data["global"][key]) for key in ("J&F-Mean", "J-Mean", "F-Mean")}
        per_sequence = {str(k): dict(v) for k, v in data["per_sequence"].items()}
        by_size = breakdown_from_objects(data["per_object"].values(), edges)
        objects = sorted(data["per_object"])
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise InputError(f"{path}: malformed results file ({type(error).__name__}: {error})") from None
    return RunScores(name=name or path.stem, global_scores=scores, per_sequence=per_sequence,
                     by_size=by_size, objects=objects)


def default_names(paths: Sequence[Path]) -> list[str]:
    """File stems, or the paths as given where stems repeat (``a/results.json``, ``b/results.json``)."""
    stems = [path.stem for path in paths]
    return [stem if stems.count(stem) == 1 else str(path) for stem, path in zip(stems, paths, strict=True)]


def coverage_warning(runs: Sequence[RunScores]) -> str | None:
    """A warning when the runs did not score the same objects (their means are not comparable)."""
    reference = runs[0].objects
    differing = [run.name for run in runs[1:] if run.objects != reference]
    if not differing:
        return None
    return (f"{', '.join(differing)} scored other objects than {runs[0].name}: means and frame counts "
            "(n, taken from the first run with areas) are not comparable")


def _shown_bins(runs: Sequence[RunScores]) -> list[tuple[int, SizeBin]]:
    """(index, bin of the first run with areas) of the size bins that hold frames in some run."""
    sized = [run.by_size for run in runs if run.by_size is not None]
    if not sized:
        return []
    return [(i, sized[0][i]) for i in range(len(sized[0])) if any(bins[i].frames for bins in sized)]


def comparison_table(runs: Sequence[RunScores], per_sequence: bool = False) -> Table:
    """Rows: runs. Columns: J&F, J, F; ``J|F`` per size bin (frames in the header); per-sequence J&F."""
    table = Table(title="Comparison (size bins: ground-truth area / frame; frames pooled over objects)")
    table.add_column("run", style="bold")
    for name in ("J&F", "J", "F"):
        table.add_column(name, justify="right")
    bins = _shown_bins(runs)
    for _, shown in bins:
        table.add_column(f"{shown.label}\nJ | F (n={shown.frames})", justify="right")
    sequences = list(dict.fromkeys(name for run in runs for name in run.per_sequence)) if per_sequence else []
    for name in sequences:
        table.add_column(f"{name}\nJ&F", justify="right")
    for run in runs:
        scores = run.global_scores
        size_cells = [f"{format_score(run.by_size[i].j_mean)} | {format_score(run.by_size[i].f_mean)}"
                      if run.by_size is not None else "-" for i, _ in bins]
        sequence_cells = [format_score(run.per_sequence.get(name, {}).get("J&F-Mean")) for name in sequences]
        global_cells = [format_score(scores[key]) for key in ("J&F-Mean", "J-Mean", "F-Mean")]
        table.add_row(run.name, *global_cells, *size_cells, *sequence_cells)
    return table


def plot_comparison(runs: Sequence[RunScores], path: str | Path) -> None:
    """Two panels (J, F): one group of bars for the DAVIS means, then one per size bin, one bar per run."""
    plt = pyplot("--plot")
    bins = _shown_bins(runs)
    groups = ["DAVIS mean\n(per object)"] + [f"{shown.label}\n(n={shown.frames})" for _, shown in bins]
    positions = np.arange(len(groups))
    width = 0.8 / max(1, len(runs))
    figure, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.6 * len(groups) * 2), 4.0), dpi=120, sharey=True)
    for panel, (metric, key) in zip(axes, (("J (region)", "j_mean"), ("F (boundary)", "f_mean")), strict=True):
        global_key = "J-Mean" if key == "j_mean" else "F-Mean"
        for k, run in enumerate(runs):
            values = [run.global_scores[global_key]] + [
                getattr(run.by_size[i], key) if run.by_size is not None else float("nan") for i, _ in bins]
            panel.bar(positions + (k - (len(runs) - 1) / 2) * width, values, width, label=run.name)
        panel.set_xticks(positions, groups, fontsize=8)
        panel.set_title(metric)
        panel.set_ylim(0, 1.0)
        panel.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mean score")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
