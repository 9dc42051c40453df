"""``vosuite eval``: pick the videos, run the evaluator with a progress bar, show and save results.

Two ways to name what is scored: a dataset root (``--gt``: every video with a prediction folder of
its name, or a split), or one video's two mask folders (``--gt-masks DIR --pred DIR``), whose
frames are matched by name where the names agree and by order otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vosuite.datasets.base import VideoRecord, files_by_stem
from vosuite.datasets.registry import detect_dataset, open_dataset
from vosuite.errors import InputError
from vosuite.io.output import claim_file
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.metrics.report import plot_sequences, print_results
from vosuite.metrics.results import EvaluationResult
from vosuite.progress import progress_bar


@dataclass
class EvalRequest:
    ground_truth: Path | None  # a dataset root; None with gt_masks
    predictions: Path
    dataset: str = "auto"
    split: str | None = None
    sequences: list[str] = field(default_factory=list)
    config: EvaluationConfig = field(default_factory=EvaluationConfig)
    out: list[Path] = field(default_factory=list)
    plot: Path | None = None
    show_progress: bool = True
    by_size: bool = False  # also print J and F by object size
    gt_masks: Path | None = None  # one video's ground-truth masks, scored against the masks in predictions
    overwrite: bool = False  # replace existing out / plot files vosuite did not write


def _split_names(values: list[str]) -> list[str]:
    return [name for value in values for name in value.split(",") if name]


def select_videos(request: EvalRequest, console: Console) -> list[VideoRecord]:
    """The split's (or the named) videos; with neither, the ground-truth videos that have predictions."""
    name = detect_dataset(request.ground_truth) if request.dataset == "auto" else request.dataset
    dataset = open_dataset(name, request.ground_truth, request.split)
    available = dataset.videos()
    if not available:
        raise InputError(f"--gt {request.ground_truth}: no ground-truth videos found (a dataset root holds "
                         "Annotations/<video>/<frame>.png; for one video's masks use --gt-masks DIR)")
    wanted = _split_names(request.sequences)
    for video in wanted:
        if video not in available:
            raise InputError(f"--sequences: {video!r} is not a video of {request.ground_truth}")
    if not wanted and request.split is None:
        wanted = [v for v in available if (request.predictions / v).is_dir()]
        if not wanted:
            raise InputError(f"--pred {request.predictions}: no sub-folder named after a video of --gt "
                             f"{request.ground_truth} ({', '.join(available[:3])}{' ...' if len(available) > 3 else ''}"
                             "); for one video's masks use --gt-masks DIR --pred DIR")
        if len(wanted) < len(available):
            console.print(f"evaluating the {len(wanted)} of {len(available)} {name} videos that have predictions "
                          "(use --split or --sequences to require others)")
    return [dataset.video(v) for v in (wanted or available)]


def single_video(gt_masks: Path, predictions: Path) -> VideoRecord:
    """One video from two mask folders: ground truth ``gt_masks/*.png`` against ``predictions/*.png``.

    Frames are matched by name when every ground-truth name has a prediction of the same name,
    otherwise by order (the i-th masks of both folders, naturally sorted), which needs as many
    predictions as ground-truth masks. The record's frames take the predictions' names, so the
    evaluator reads ``predictions/<name>.png``.
    """
    for option, folder in (("--gt-masks", gt_masks), ("--pred", predictions)):
        if not folder.is_dir():
            raise InputError(f"{option} {folder}: not a folder")
    truth = files_by_stem(gt_masks, (".png",))
    predicted = files_by_stem(predictions, (".png",))
    if not truth:
        raise InputError(f"--gt-masks {gt_masks}: no PNG masks")
    if not predicted:
        raise InputError(f"--pred {predictions}: no PNG masks")
    if set(truth) <= set(predicted):
        names = list(truth)
    elif len(truth) == len(predicted):
        names = list(predicted)
    else:
        raise InputError(f"--pred {predictions}: {len(predicted)} masks for {len(truth)} ground-truth masks in "
                         f"{gt_masks}, and their names differ (e.g. {next(iter(predicted))}.png against "
                         f"{next(iter(truth))}.png): cannot match frames")
    annotations = dict(zip(names, truth.values(), strict=True))
    return VideoRecord(name=predictions.resolve().name, frame_names=names, frame_paths=[],
                       annotation_paths=annotations)


def _claim_outputs(request: EvalRequest) -> None:
    """Check every file eval will write before scoring (the output rule of :mod:`vosuite.io.output`)."""
    inputs = (request.ground_truth, request.gt_masks, request.predictions)
    for path in request.out:
        claim_file(path, overwrite=request.overwrite, inputs=inputs, option="--out")
    if request.plot is not None:
        claim_file(request.plot, overwrite=request.overwrite, inputs=inputs, option="--plot")


def run_eval(request: EvalRequest, console: Console | None = None) -> EvaluationResult:
    console = console or Console()
    if not request.predictions.is_dir():
        raise InputError(f"--pred: {request.predictions} is not a folder")
    _claim_outputs(request)
    if request.gt_masks is not None:
        videos = [single_video(request.gt_masks, request.predictions)]
        prediction_root = request.predictions.resolve().parent
    else:
        videos, prediction_root = select_videos(request, console), request.predictions
    with progress_bar("evaluating frames", enabled=request.show_progress) as update:
        result = Evaluator(request.config).evaluate(videos, prediction_root, progress=update)
    print_results(result, console, by_size=request.by_size)
    for path in request.out:
        result.save(path)
        console.print(f"wrote {path}")
    if request.plot is not None:
        plot_sequences(result, request.plot)
        console.print(f"wrote {request.plot}")
    return result
