"""``vosuite demo``: the whole pipeline on an embedded default that needs no download.

It generates a clip with exact ground truth, follows its objects from the first frame's mask,
writes palette PNGs and an overlay video, and scores the result with the DAVIS evaluator. The
tracker is the default model with the weights that ship in the package (the DeAOT-T student,
``vosuite/weights/deaot-t-deform.md``), or the optical-flow propagation baseline
(``--tracker flow``).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vosuite.datasets.registry import open_dataset
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.evaluate import EvalRequest, run_eval
from vosuite.io.output import OutputFolder, prepare_output
from vosuite.options import DEFAULT_MODEL
from vosuite.registry import get_spec

TRACKERS = ("student", "flow")


def run_demo(out: Path, overwrite: bool = False, console: Console | None = None, tracker: str = "student") -> float:
    """Run the demo into ``out`` with ``tracker`` (the shipped student model, or the optical-flow
    baseline); returns the global J&F-Mean."""
    if tracker not in TRACKERS:
        raise InputError(f"--tracker {tracker!r}: use one of {', '.join(TRACKERS)}")
    console = console or Console()
    with prepare_output(out, overwrite) as folder:
        return _demo_into(folder, out, console, tracker)


def _demo_into(folder: OutputFolder, out: Path, console: Console, tracker: str) -> float:
    config = SyntheticClipConfig()
    clip_root = write_clip(out / "clip", config)
    folder.adopt("clip")
    frames_dir = clip_root / "JPEGImages" / config.name
    video = open_dataset("generic", clip_root).video(config.name)
    predictions = out / "predictions" / config.name
    overlay = folder.file("overlay.mp4")
    first_mask = video.annotation_paths[video.annotated_frames[0]]
    _segment_with(DEFAULT_MODEL if tracker == "student" else "flow", frames_dir, first_mask, predictions, overlay,
                  console)
    folder.adopt("predictions")
    written = [folder.file(name) for name in ("results.json", "results.csv", "per_sequence.png")]
    result = run_eval(EvalRequest(ground_truth=clip_root, predictions=out / "predictions", dataset="generic",
                                  out=written[:2], plot=written[2]), console)
    console.print(f"overlay video: {out / 'overlay.mp4'}")
    return result.global_scores()["J&F-Mean"]


def _segment_with(model: str, frames_dir: Path, first_mask: Path, predictions: Path, overlay: Path,
                  console: Console) -> None:
    """``vosuite segment`` with ``model``: the shipped student, or the registered ``flow`` baseline."""
    from vosuite.segment import Segmenter

    segmenter = Segmenter(model=model, console=console)
    report = segmenter.segment(frames_dir, first_mask, predictions, overlay=overlay)
    weights = (f"the shipped {model} weights (internal size {segmenter.size})" if get_spec(model).trained
               else f"the training-free {model} baseline")
    console.print(f"{report.summary()} with {weights}")
