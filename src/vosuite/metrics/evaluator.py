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

In memory: :meth:`Evaluator.video_scorer` gives a :class:`VideoScorer` that takes one video's
predicted [H, W] label maps frame by frame (``add``), reduces each to its tally as it arrives (so a
video's predictions are never all held) and hands back the video's tallies (``finish``);
:meth:`Evaluator.evaluate_tallies` turns those into the result. :meth:`Evaluator.evaluate_arrays`
does all three for a function yielding ``(frame name, label map)`` per video. Arrays follow the
rules of files (0/255 read as id 1, the same size check, the same per-frame tally), so the numbers
equal those of the same predictions written with :func:`vosuite.io.masks.write_mask` and scored by
:meth:`Evaluator.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from vosuite.cpu import available_cores
from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.io.masks import ids_from_binary_0_255, read_mask
from vosuite.metrics.boundary import boundary_tolerance
from vosuite.metrics.frame_tally import FrameTally, present_ids, tally_frame
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
    # unsupervised: match proposals to objects on every frame separately (the SSL-UVOS fork of the
    # evaluator, whose numbers Betrayed by Attention reports) instead of once per sequence (official)
    per_frame_matching: bool = False
    strict: bool = False
    workers: int | None = None  # None: every core

    def __post_init__(self) -> None:
        if self.task not in TASK_ALIASES:
            raise InputError(f"--task: unknown task {self.task!r} (semi or unsupervised)")
        object.__setattr__(self, "task", TASK_ALIASES[self.task])
        if self.per_frame_matching and self.task != UNSUPERVISED:
            raise InputError("--per-frame-matching applies to --task unsupervised")


def read_prediction(path: Path) -> np.ndarray:
    """Raw prediction ids; a 0/255 mask (DAVIS-2016 style) becomes 0/1."""
    return ids_from_binary_0_255(read_mask(path))


@dataclass(frozen=True)
class FrameJob:
    video: VideoRecord
    frame: str
    prediction_path: Path | None  # None: the frame's prediction is not needed


def _prediction_path(prediction_root: Path, video: str, frame: str) -> Path:
    return prediction_root / video / f"{frame}.png"


def _label_map(prediction: np.ndarray, where: str) -> np.ndarray:
    """An in-memory prediction as the ids its PNG would hold: [H, W], uint8 when every id fits, else uint16."""
    labels = np.asarray(prediction)
    if labels.ndim != 2:
        raise InputError(f"{where}: prediction must be an [H, W] label map, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{where}: prediction must hold integer ids, got dtype {labels.dtype}")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > 65535:
        raise InputError(f"{where}: prediction ids outside 0..65535 ({low}..{high})")
    return labels.astype(np.uint8 if high <= 255 else np.uint16, copy=False)


def _tally(truth: np.ndarray, prediction: np.ndarray, config: EvaluationConfig, where: str) -> FrameTally:
    """One frame's tally, the core of the file and the in-memory paths; ``where`` names the prediction."""
    if prediction.shape != truth.shape:
        raise InputError(f"{where}: size {prediction.shape[1]}x{prediction.shape[0]} differs "
                         f"from the ground truth {truth.shape[1]}x{truth.shape[0]}")
    radius = boundary_tolerance(*truth.shape, bound_th=config.bound_th)
    return tally_frame(truth, prediction, radius, exclude_void=config.task == UNSUPERVISED,
                       all_pairs=config.task == UNSUPERVISED)


def _tally_job(job: FrameJob, config: EvaluationConfig) -> tuple[np.ndarray | None, FrameTally | None]:
    truth = job.video.labels(job.frame)
    if job.prediction_path is None:
        return truth, None
    if not job.prediction_path.is_file():
        raise InputError(f"{job.prediction_path}: prediction missing for frame {job.frame} of {job.video.name}")
    return None, _tally(truth, read_prediction(job.prediction_path), config, str(job.prediction_path))


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


def _collect(data: VideoTallies, frame: str, truth: np.ndarray | None, tally: FrameTally | None) -> None:
    """Record a frame's objects (from its truth, or its tally's) and its tally; frames come in temporal order."""
    ids = present_ids(truth, exclude=(0, 255)) if truth is not None else list(tally.truth_area)
    for object_id in ids:
        data.first_appearance.setdefault(object_id, frame)
    if tally is not None:
        data.tallies[frame] = tally


class VideoScorer:
    """Scores one video's in-memory predictions frame by frame, holding only each frame's tally.

    Feed ``add(frame name, [H, W] label map)`` in any order; frames outside :attr:`frames_to_score`
    (not annotated, or not scored by the task) are ignored, so every frame of the video may be fed.
    :meth:`finish` returns the :class:`VideoTallies` that :meth:`Evaluator.evaluate_tallies` scores.
    """

    def __init__(self, video: VideoRecord, config: EvaluationConfig) -> None:
        self.video = video
        self.config = config
        self._scored = _frames_to_read(video, config)
        self._scored_set = set(self._scored)
        self._tallies: dict[str, FrameTally] = {}

    @property
    def frames_to_score(self) -> list[str]:
        """The frames that need a prediction: all annotated (unsupervised), all but the first and last (semi)."""
        return list(self._scored)

    def add(self, frame_name: str, prediction: np.ndarray) -> None:
        """Tally ``prediction`` (an [H, W] integer label map) for ``frame_name``; unscored frames are ignored."""
        if frame_name not in self._scored_set:
            return
        where = f"{self.video.name} frame {frame_name}"
        if frame_name in self._tallies:
            raise InputError(f"{where}: prediction given twice")
        labels = ids_from_binary_0_255(_label_map(prediction, where))  # the 0/255 rule of read_prediction
        self._tallies[frame_name] = _tally(self.video.labels(frame_name), labels, self.config, where)

    def finish(self) -> VideoTallies:
        """The video's tallies; an error naming the first scored frame that got no prediction."""
        missing = [frame for frame in self._scored if frame not in self._tallies]
        if missing:
            raise InputError(f"{self.video.name} frame {missing[0]}: prediction missing "
                             f"({len(missing)} of {len(self._scored)} scored frames have none)")
        data = VideoTallies(self.video, {}, {})
        for frame in self.video.annotated_frames:
            tally = self._tallies.get(frame)
            _collect(data, frame, self.video.labels(frame) if tally is None else None, tally)
        return data


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
    if config.per_frame_matching:
        return _per_frame_matched_rows(data.video.name, frames, j_scores, f_scores, config)
    assignment_score = (np.mean(j_scores, axis=2) + np.mean(f_scores, axis=2)) / 2  # [P, G]
    rows, columns = linear_sum_assignment(-assignment_score)
    return [_object_result(data.video.name, truth_ids[g], frames, j_scores[p, g], f_scores[p, g], config,
                           proposal=proposals[p], areas=_areas(truth_ids[g], frames, data.tallies))
            for p, g in zip(rows, columns, strict=True)]


def _per_frame_matched_rows(sequence: str, frames: list[str], j_scores: np.ndarray, f_scores: np.ndarray,
                            config: EvaluationConfig) -> list[ObjectResult]:
    """The SSL-UVOS fork's protocol (Betrayed by Attention's evaluator): on every frame a separate
    Hungarian matching of proposals to ground-truth objects on J + F; row ``i`` at frame t is the
    i-th matched pair in ascending proposal order, so a row follows no fixed object (rows are
    named ``<video>_<i>``, ``object_id`` = i, no matched proposal). It lets every frame pick its
    best proposal, so it scores at least as high as the official per-sequence matching (fixture:
    0.667 against 0.521)."""
    count = j_scores.shape[1]
    j_rows, f_rows = np.zeros((count, len(frames))), np.zeros((count, len(frames)))
    for t in range(len(frames)):
        rows, columns = linear_sum_assignment(-(j_scores[:, :, t] + f_scores[:, :, t]))  # rows ascending
        for i, (p, g) in enumerate(zip(rows, columns, strict=True)):
            j_rows[i, t], f_rows[i, t] = j_scores[p, g, t], f_scores[p, g, t]
    return [_object_result(sequence, i + 1, frames, j_rows[i], f_rows[i], config) for i in range(count)]


def _extra_ids(data: VideoTallies) -> list[int]:
    predicted = set()
    for tally in data.tallies.values():
        predicted.update(tally.prediction_area)
    return sorted(predicted - set(data.first_appearance))


class Evaluator:
    """Scores a folder of predictions ``<root>/<video>/<frame>.png`` against dataset videos."""

    def __init__(self, config: EvaluationConfig | None = None) -> None:
        self.config = config or EvaluationConfig()

    def video_scorer(self, video: VideoRecord) -> VideoScorer:
        """A scorer for ``video``'s in-memory predictions under this evaluator's configuration."""
        return VideoScorer(video, self.config)

    def _workers(self) -> int:
        return self.config.workers or available_cores()

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
                _collect(per_video[job.video.name], job.frame, truth, tally)
                if progress is not None:
                    progress(done, len(jobs))
        return self.evaluate_tallies(list(per_video.values()))

    def evaluate_arrays(self, videos: Iterable[VideoRecord],
                        predictions: Callable[[VideoRecord], Iterable[tuple[str, np.ndarray]]]) -> EvaluationResult:
        """Evaluate in-memory predictions: ``predictions(video)`` yields ``(frame name, [H, W] label map)``.

        Videos are scored one after the other and each frame is tallied as it is yielded; no prediction
        is kept once tallied, so memory stays bounded when ``predictions`` yields lazily.
        """
        return self.evaluate_tallies(self._score_video(video, predictions(video)) for video in videos)

    def _score_video(self, video: VideoRecord, frames: Iterable[tuple[str, np.ndarray]]) -> VideoTallies:
        scorer = self.video_scorer(video)
        for frame_name, prediction in frames:
            scorer.add(frame_name, prediction)
        return scorer.finish()

    def evaluate_tallies(self, videos: Iterable[VideoTallies]) -> EvaluationResult:
        """The result of every video's tallies (from :meth:`VideoScorer.finish`), in the order given."""
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
