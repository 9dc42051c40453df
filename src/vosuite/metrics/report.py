"""Showing evaluation results: a terminal table and a per-sequence J&F bar chart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from vosuite.io.atomic import atomic_path
from vosuite.metrics.results import COLUMNS, EvaluationResult
from vosuite.metrics.size_breakdown import SizeBin
from vosuite.plotting import pyplot


def results_table(result: EvaluationResult, title: str | None = None) -> Table:
    """Global row, then one row per sequence (mean over its objects)."""
    table = Table(title=title or f"DAVIS {result.task} evaluation", show_lines=False)
    table.add_column("Sequence", style="bold")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    global_scores = result.global_scores()
    table.add_row("Global", *(f"{global_scores[c]:.3f}" for c in COLUMNS), style="cyan")
    for name, scores in result.sequence_scores().items():
        table.add_row(name, *(f"{scores[c]:.3f}" for c in COLUMNS))
    return table


def format_score(value: float | None) -> str:
    """Three decimals; ``-`` for a missing or NaN score (an empty bin, a run without areas)."""
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def size_table(bins: list[SizeBin], title: str = "J and F by ground-truth object size") -> Table:
    """One row per size bin: the (object, frame) pairs in it and their mean J, F and J&F."""
    table = Table(title=title)
    for name in ("object area / frame", "frames", "J-Mean", "F-Mean", "J&F-Mean"):
        table.add_column(name, justify="left" if name.startswith("object") else "right")
    for row in bins:
        table.add_row(row.label, str(row.frames),
                      *(format_score(v) for v in (row.j_mean, row.f_mean, row.jf_mean)))
    return table


def wide_console(console: Console | None, width: int = 110) -> Console:
    """``console`` (default stdout), widened when piped or logged so columns are not squeezed."""
    console = console or Console()
    if not console.is_terminal and console.width < width:
        console = Console(file=console.file, width=width)
    return console


def print_results(result: EvaluationResult, console: Console | None = None, by_size: bool = False) -> None:
    console = wide_console(console)
    console.print(results_table(result))
    bins = result.size_breakdown() if by_size else None
    if bins is not None:
        console.print(size_table(bins))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def plot_sequences(result: EvaluationResult, path: str | Path) -> None:
    """Bar chart of per-sequence J-Mean, F-Mean and J&F-Mean, sorted by J&F, with the global mean."""
    plt = pyplot("--plot")
    scores = result.sequence_scores()
    names = sorted(scores, key=lambda n: scores[n]["J&F-Mean"])
    positions = np.arange(len(names))
    width = 0.27
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2.5), 4.2), dpi=120)
    for offset, column, colour in ((-width, "J-Mean", "#4c72b0"), (0.0, "F-Mean", "#55a868"),
                                   (width, "J&F-Mean", "#c44e52")):
        axes.bar(positions + offset, [scores[n][column] for n in names], width, label=column, color=colour)
    global_mean = result.global_scores()["J&F-Mean"]
    axes.axhline(global_mean, color="#333333", linestyle="--", linewidth=1, label=f"global J&F {global_mean:.3f}")
    axes.set_xticks(positions, names, rotation=45, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score")
    axes.set_title(f"Per-sequence scores ({result.task})")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
