"""``vosuite eval``: pick the videos, run the evaluator with a progress bar, show and save results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vosuite.datasets.base import VideoRecord
from vosuite.datasets.registry import detect_dataset, open_dataset
from vosuite.errors import InputError
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.metrics.report import plot_sequences, print_results
from vosuite.metrics.results import EvaluationResult
from vosuite.progress import progress_bar


@dataclass
class EvalRequest:
    ground_truth: Path
    predictions: Path
    dataset: str = "auto"
    split: str | None = None
    sequences: list[str] = field(default_factory=list)
    config: EvaluationConfig = field(default_factory=EvaluationConfig)
    out: list[Path] = field(default_factory=list)
    plot: Path | None = None
    show_progress: bool = True
    by_size: bool = False  # also print J and F by object size


def _split_names(values: list[str]) -> list[str]:
    return [name for value in values for name in value.split(",") if name]


def select_videos(request: EvalRequest, console: Console) -> list[VideoRecord]:
    """The split's (or the named) videos; with neither, the ground-truth videos that have predictions."""
    name = detect_dataset(request.ground_truth) if request.dataset == "auto" else request.dataset
    dataset = open_dataset(name, request.ground_truth, request.split)
    available = dataset.videos()
    wanted = _split_names(request.sequences)
    for video in wanted:
        if video not in available:
            raise InputError(f"--sequences: {video!r} is not a video of {request.ground_truth}")
    if not wanted and request.split is None:
        wanted = [v for v in available if (request.predictions / v).is_dir()]
        if not wanted:
            raise InputError(f"{request.predictions}: no folder named after a ground-truth video")
        if len(wanted) < len(available):
            console.print(f"evaluating the {len(wanted)} of {len(available)} {name} videos that have predictions "
                          "(use --split or --sequences to require others)")
    return [dataset.video(v) for v in (wanted or available)]


def run_eval(request: EvalRequest, console: Console | None = None) -> EvaluationResult:
    console = console or Console()
    if not request.predictions.is_dir():
        raise InputError(f"--pred: {request.predictions} is not a folder")
    videos = select_videos(request, console)
    with progress_bar("evaluating frames", enabled=request.show_progress) as update:
        result = Evaluator(request.config).evaluate(videos, request.predictions, progress=update)
    print_results(result, console, by_size=request.by_size)
    for path in request.out:
        result.save(path)
        console.print(f"wrote {path}")
    if request.plot is not None:
        plot_sequences(result, request.plot)
        console.print(f"wrote {request.plot}")
    return result
