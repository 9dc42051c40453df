"""The DAVIS evaluation protocols (Perazzi et al. 2016; Pont-Tuset et al. 2017, "The 2017 DAVIS
Challenge on Video Object Segmentation"; Caelles et al. 2019 for the unsupervised track).

Numbers equal those of the official davis2017-evaluation code (tested against its fixture), with
these deliberate differences, each only where the official code fails or aborts:

* Decay uses int64 bin edges; ``official_decay=True`` reproduces the official uint8 edges, which
  wrap for sequences of 256 or more scored frames.
* Ground-truth objects are the ids present in the annotations (not 1..max of the first frame), so
  non-contiguous ids work; an object that first appears on a later frame is scored from the frame
  after its first appearance (semi-supervised).
* An object with no frame left to score (it first appears on the last annotated frame) is left out
  with a warning, instead of a NaN row that turns every global mean into NaN.
* Unsupervised rows are named after the ground-truth object they are matched to
  (``<video>_<object id>``); the official code numbers them by ascending proposal id. The
  numbers are the same; with several objects per video the row names can differ.
* A prediction without an object's id scores that object as empty (as the official code); ids
  that are not ground-truth objects are reported in ``warnings`` (an error with ``strict``).
* Predictions whose only non-zero value is 255 (DAVIS-2016 style 0/255 PNGs) are read as id 1.
* A missing or unreadable prediction, or one whose size differs from the ground truth, is an
  error naming the file (the official code prints a message and exits with status 0).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.io.masks import read_mask
from vosuite.metrics.boundary import boundary_tolerance
from vosuite.metrics.frame_tally import FrameTally, id_histogram, present_ids, tally_frame
from vosuite.metrics.results import EvaluationResult, ObjectResult
from vosuite.metrics.statistics import mean_recall_decay

SEMI = "semi-supervised"
UNSUPERVISED = "unsupervised"
TASK_ALIASES = {"semi": SEMI, SEMI: SEMI, "unsupervised": UNSUPERVISED, "unsup": UNSUPERVISED}


@dataclass(frozen=True)
class EvaluationConfig:
    task: str = SEMI
    bound_th: float = 0.008
    official_decay: bool = False
    max_proposals: int = 20
    strict: bool = False
    workers: int | None = None  # None: every core

    def __post_init__(self) -> None:
        if self.task not in TASK_ALIASES:
            raise InputError(f"--task: unknown task {self.task!r} (semi or unsupervised)")
        object.__setattr__(self, "task", TASK_ALIASES[self.task])


def read_prediction(path: Path) -> np.ndarray:
    """Raw prediction ids; a 0/255 mask (DAVIS-2016 style) becomes 0/1."""
    labels = read_mask(path)
    is_binary_0_255 = (labels.dtype == np.uint8 and labels.size and labels.max() == 255
                       and id_histogram(labels)[1:255].sum() == 0)
    return (labels == 255).astype(np.uint8) if is_binary_0_255 else labels


@dataclass(frozen=True)
class FrameJob:
    video: VideoRecord
    frame: str
    prediction_path: Path | None  # None: the frame's prediction is not needed


def _prediction_path(prediction_root: Path, video: str, frame: str) -> Path:
    return prediction_root / video / f"{frame}.png"


def _tally_job(job: FrameJob, config: EvaluationConfig) -> tuple[np.ndarray | None, FrameTally | None]:
    truth = job.video.labels(job.frame)
    if job.prediction_path is None:
        return truth, None
    if not job.prediction_path.is_file():
        raise InputError(f"{job.prediction_path}: prediction missing for frame {job.frame} of {job.video.name}")
    prediction = read_prediction(job.prediction_path)
    if prediction.shape != truth.shape:
        raise InputError(f"{job.prediction_path}: size {prediction.shape[1]}x{prediction.shape[0]} differs "
                         f"from the ground truth {truth.shape[1]}x{truth.shape[0]}")
    radius = boundary_tolerance(*truth.shape, bound_th=config.bound_th)
    tally = tally_frame(truth, prediction, radius, exclude_void=config.task == UNSUPERVISED,
                        all_pairs=config.task == UNSUPERVISED)
    return None, tally


def _frames_to_read(video: VideoRecord, config: EvaluationConfig) -> list[str]:
    """Frames whose prediction is read: all (unsupervised) or all but the first and last (semi)."""
    frames = video.annotated_frames
    if config.task == UNSUPERVISED:
        return frames
    return frames[1:-1]


def _jobs(video: VideoRecord, prediction_root: Path, config: EvaluationConfig) -> list[FrameJob]:
    scored = set(_frames_to_read(video, config))
    return [FrameJob(video, frame, _prediction_path(prediction_root, video.name, frame) if frame in scored
                     else None) for frame in video.annotated_frames]


@dataclass
class VideoTallies:
    video: VideoRecord
    first_appearance: dict[int, str]  # ground-truth object id -> first annotated frame with it
    tallies: dict[str, FrameTally]  # scored frame -> tally


def _object_frames(video: VideoRecord, first_frame: str, tallies: dict[str, FrameTally]) -> list[str]:
    order = video.annotated_frames
    start = order.index(first_frame)
    return [frame for frame in order[start + 1:] if frame in tallies]


def _score(values: Callable[[FrameTally], float], frames: list[str], tallies: dict[str, FrameTally]) -> np.ndarray:
    return np.array([values(tallies[frame]) for frame in frames], dtype=np.float64)


def _semi_objects(data: VideoTallies, config: EvaluationConfig, warnings: list[str]) -> list[ObjectResult]:
    results = []
    for object_id, first_frame in sorted(data.first_appearance.items()):
        frames = _object_frames(data.video, first_frame, data.tallies)
        if not frames and len(data.video.annotated_frames) > 2:
            warnings.append(f"{data.video.name}: object {object_id} first appears on frame {first_frame}, "
                            "which leaves no frame to score; left out")
            continue
        j_values = _score(lambda t, i=object_id: t.jaccard(i, i), frames, data.tallies)
        f_values = _score(lambda t, i=object_id: t.f_measure(i, i), frames, data.tallies)
        results.append(_object_result(data.video.name, object_id, frames, j_values, f_values, config,
                                      areas=_areas(object_id, frames, data.tallies)))
    return results


def _areas(object_id: int, frames: list[str], tallies: dict[str, FrameTally]) -> np.ndarray:
    """[T] the object's ground-truth area as a fraction of each scored frame."""
    return np.array([tallies[frame].area_fraction(object_id) for frame in frames], dtype=np.float64)


def _object_result(sequence: str, object_id: int, frames: list[str], j_values: np.ndarray,
                   f_values: np.ndarray, config: EvaluationConfig, proposal: int | None = None,
                   areas: np.ndarray | None = None) -> ObjectResult:
    return ObjectResult(sequence=sequence, object_id=object_id, frames=frames, j_per_frame=j_values,
                        f_per_frame=f_values, j=mean_recall_decay(j_values, config.official_decay),
                        f=mean_recall_decay(f_values, config.official_decay), matched_proposal=proposal,
                        area_per_frame=areas)


def _unsupervised_objects(data: VideoTallies, config: EvaluationConfig, warnings: list[str]) -> list[ObjectResult]:
    """Hungarian matching of proposals to objects once per sequence, on (mean J + mean F) / 2."""
    frames = list(data.tallies)
    truth_ids = sorted(data.first_appearance)
    max_proposal = max((max(t.prediction_area, default=0) for t in data.tallies.values()), default=0)
    if max_proposal > config.max_proposals:
        raise InputError(f"{data.video.name}: prediction id {max_proposal} exceeds the maximum of "
                         f"{config.max_proposals} proposals")
    if not truth_ids:  # no ground-truth object: nothing to match (the official code gives no rows)
        return []
    proposals = list(range(1, max(max_proposal, len(truth_ids)) + 1))
    j_scores = np.stack([np.stack([_score(lambda t, p=p, g=g: t.jaccard(p, g), frames, data.tallies)
                                   for g in truth_ids]) for p in proposals])  # [P, G, T]
    f_scores = np.stack([np.stack([_score(lambda t, p=p, g=g: t.f_measure(p, g), frames, data.tallies)
                                   for g in truth_ids]) for p in proposals])  # [P, G, T]
    assignment_score = (np.mean(j_scores, axis=2) + np.mean(f_scores, axis=2)) / 2  # [P, G]
    rows, columns = linear_sum_assignment(-assignment_score)
    return [_object_result(data.video.name, truth_ids[g], frames, j_scores[p, g], f_scores[p, g], config,
                           proposal=proposals[p], areas=_areas(truth_ids[g], frames, data.tallies))
            for p, g in zip(rows, columns, strict=True)]


def _extra_ids(data: VideoTallies) -> list[int]:
    predicted = set()
    for tally in data.tallies.values():
        predicted.update(tally.prediction_area)
    return sorted(predicted - set(data.first_appearance))


class Evaluator:
    """Scores a folder of predictions ``<root>/<video>/<frame>.png`` against dataset videos."""

    def __init__(self, config: EvaluationConfig | None = None) -> None:
        self.config = config or EvaluationConfig()

    def _workers(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def evaluate(self, videos: Sequence[VideoRecord], prediction_root: str | Path,
                 progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
        """Evaluate every video; ``progress(done_frames, total_frames)`` is called as frames finish."""
        prediction_root = Path(prediction_root)
        if not prediction_root.is_dir():
            raise InputError(f"{prediction_root}: prediction folder not found")
        jobs = [job for video in videos for job in _jobs(video, prediction_root, self.config)]
        per_video = {video.name: VideoTallies(video, {}, {}) for video in videos}
        with ThreadPoolExecutor(max_workers=self._workers()) as pool:
            for done, (job, (truth, tally)) in enumerate(
                    zip(jobs, pool.map(lambda j: _tally_job(j, self.config), jobs), strict=True), start=1):
                self._collect(per_video[job.video.name], job.frame, truth, tally)
                if progress is not None:
                    progress(done, len(jobs))
        return self._assemble(list(per_video.values()))

    @staticmethod
    def _collect(data: VideoTallies, frame: str, truth: np.ndarray | None, tally: FrameTally | None) -> None:
        ids = present_ids(truth, exclude=(0, 255)) if truth is not None else list(tally.truth_area)
        for object_id in ids:
            data.first_appearance.setdefault(object_id, frame)
        if tally is not None:
            data.tallies[frame] = tally

    def _assemble(self, videos: Iterable[VideoTallies]) -> EvaluationResult:
        objects: list[ObjectResult] = []
        warnings: list[str] = []
        for data in videos:
            extra = _extra_ids(data) if self.config.task == SEMI else []
            if extra:
                message = f"{data.video.name}: predicted ids {extra} are not ground-truth objects"
                if self.config.strict:
                    raise InputError(message)
                warnings.append(message)
            score = _unsupervised_objects if self.config.task == UNSUPERVISED else _semi_objects
            objects.extend(score(data, self.config, warnings))
        settings = {"task": self.config.task, "bound_th": self.config.bound_th,
                    "official_decay": self.config.official_decay}
        return EvaluationResult(task=self.config.task, objects=objects, warnings=warnings, settings=settings)
