"""``vosuite demo``: the whole pipeline on an embedded default that needs no download.

It generates a clip with exact ground truth, follows its objects from the first frame's mask,
writes palette PNGs and an overlay video, and scores the result with the DAVIS evaluator. The
tracker is the default model with the weights that ship in the package (the DeAOT-T student,
``vosuite/weights/deaot-t-deform.md``), or the optical-flow propagation baseline
(``--tracker flow``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console

from vosuite.datasets.registry import open_dataset
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.evaluate import EvalRequest, run_eval
from vosuite.inference.flow_propagation import FlowPropagator
from vosuite.io.frames import open_frames
from vosuite.io.masks import write_mask
from vosuite.io.output import prepare_output
from vosuite.io.overlay import OverlayWriter
from vosuite.progress import progress_bar

TRACKERS = ("student", "flow")


def run_demo(out: Path, overwrite: bool = False, console: Console | None = None, tracker: str = "student") -> float:
    """Run the demo into ``out`` with ``tracker`` (the shipped student model, or the optical-flow
    baseline); returns the global J&F-Mean."""
    if tracker not in TRACKERS:
        raise InputError(f"--tracker {tracker!r}: use one of {', '.join(TRACKERS)}")
    console = console or Console()
    folder = prepare_output(out, overwrite)
    config = SyntheticClipConfig()
    clip_root = write_clip(out / "clip", config)
    folder.adopt("clip")
    frames_dir = clip_root / "JPEGImages" / config.name
    video = open_dataset("generic", clip_root).video(config.name)
    predictions = out / "predictions" / config.name
    overlay = folder.file("overlay.mp4")
    if tracker == "student":
        first_mask = video.annotation_paths[video.annotated_frames[0]]
        _segment_with_student(frames_dir, first_mask, predictions, overlay, console)
    else:
        _segment_with_flow(frames_dir, video.labels(video.annotated_frames[0]), predictions, overlay, console)
    folder.adopt("predictions")
    written = [folder.file(name) for name in ("results.json", "results.csv", "per_sequence.png")]
    result = run_eval(EvalRequest(ground_truth=clip_root, predictions=out / "predictions", dataset="generic",
                                  out=written[:2], plot=written[2]), console)
    console.print(f"overlay video: {out / 'overlay.mp4'}")
    return result.global_scores()["J&F-Mean"]


def _segment_with_student(frames_dir: Path, first_mask: Path, predictions: Path, overlay: Path,
                          console: Console) -> None:
    """The default model with its shipped weights (``vosuite segment`` without --model/--checkpoint)."""
    from vosuite.segment import Segmenter

    segmenter = Segmenter(console=console)
    report = segmenter.segment(frames_dir, first_mask, predictions, overlay=overlay)
    console.print(f"{report.summary()} with the shipped {segmenter.model.cfg.name} weights "
                  f"(internal size {segmenter.size})")


def _segment_with_flow(frames_dir: Path, first_labels: np.ndarray, predictions: Path, overlay: Path,
                       console: Console) -> None:
    """The optical-flow propagation baseline (no learned weights)."""
    tracker = FlowPropagator()
    started = time.perf_counter()
    frames = open_frames(frames_dir)
    with OverlayWriter(overlay, fps=12) as draw, progress_bar("segmenting") as update:
        for frame in frames:
            labels = tracker.step(frame.rgb, first_labels if frame.index == 0 else None)
            write_mask(predictions / f"{frame.name}.png", labels)
            draw.write(frame.rgb, labels)
            update(frame.index + 1, len(frames))
    elapsed = time.perf_counter() - started
    console.print(f"segmented {len(frames)} frames in {elapsed:.2f} s ({len(frames) / elapsed:.1f} fps) "
                  "with the optical-flow propagation baseline")
