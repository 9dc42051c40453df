"""In-memory scoring (VideoScorer, Evaluator.evaluate_arrays / evaluate_tallies) against the PNG path:
the same predictions give exactly the same numbers, and the same input errors name the video and frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosuite.datasets import VideoRecord, open_dataset
from vosuite.errors import InputError
from vosuite.io.masks import write_mask
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.metrics.results import EvaluationResult

H, W = 24, 32
TASKS = ("semi", "unsupervised")


def box(labels: np.ndarray, object_id: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    labels = labels.copy()
    labels[rows[0]:rows[1], cols[0]:cols[1]] = object_id
    return labels


def alpha_truth(t: int) -> np.ndarray:
    """Object 1 moves right; object 2 appears on frame 1; frame 3 has a void band."""
    labels = box(np.zeros((H, W), np.uint8), 1, (2, 9), (2 + 2 * t, 11 + 2 * t))
    if t >= 1:
        labels = box(labels, 2, (13, 21), (20 - t, 28 - t))
    if t == 3:
        labels[:, 30:] = 255
    return labels


def beta_truth(t: int) -> np.ndarray:
    """Objects 1 and 3, the second one moving down."""
    labels = box(np.zeros((H, W), np.uint8), 1, (3, 10), (4, 14))
    return box(labels, 3, (8 + t, 15 + t), (18, 27))


def alpha_prediction(t: int) -> np.ndarray:
    """Shifted boxes, a stray blob of object 2, and an id (4) that is no object."""
    labels = np.roll(np.where(alpha_truth(t) == 255, 0, alpha_truth(t)), shift=(t % 3) - 1, axis=1).astype(np.uint8)
    if t == 2:
        labels = box(labels, 2, (0, 3), (0, 4))
    if t == 4:
        labels = box(labels, 4, (20, 24), (0, 6))
    return labels


def beta_prediction(t: int) -> np.ndarray:
    """Object 3 one row early and narrower, object 1 eroded."""
    labels = box(np.zeros((H, W), np.uint8), 1, (4, 10), (5, 13))
    labels = box(labels, 3, (7 + t, 15 + t), (18, 26))
    return labels


FRAMES = {"alpha": 6, "beta": 8}
TRUTH = {"alpha": alpha_truth, "beta": beta_truth}
PREDICTION = {"alpha": alpha_prediction, "beta": beta_prediction}
ANNOTATED = {"alpha": range(6), "beta": range(0, 8, 2)}  # beta: every other frame annotated


def write_dataset(root: Path) -> list[VideoRecord]:
    """A generic tree (JPEGImages / Annotations) of the two videos; beta is annotated on even frames only."""
    for name, count in FRAMES.items():
        (root / "JPEGImages" / name).mkdir(parents=True)
        for t in range(count):
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "JPEGImages" / name / f"{t:05d}.jpg")
        for t in ANNOTATED[name]:
            write_mask(root / "Annotations" / name / f"{t:05d}.png", TRUTH[name](t))
    return list(open_dataset("generic", root))


def frame_predictions(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
    """Every frame of the video (annotated or not); beta's label maps are int64."""
    for t, frame in enumerate(video.frame_names):
        labels = PREDICTION[video.name](t)
        yield frame, labels.astype(np.int64) if video.name == "beta" else labels


def write_predictions(root: Path, videos: list[VideoRecord]) -> Path:
    for video in videos:
        for frame, labels in frame_predictions(video):
            write_mask(root / video.name / f"{frame}.png", labels)
    return root


def assert_identical(files: EvaluationResult, arrays: EvaluationResult) -> None:
    """Exactly equal results: the dictionaries, the global scores and every per-frame array."""
    assert files.to_dict() == arrays.to_dict()
    assert files.global_scores() == arrays.global_scores()
    assert files.warnings == arrays.warnings
    assert [obj.key for obj in files.objects] == [obj.key for obj in arrays.objects]
    for from_files, from_arrays in zip(files.objects, arrays.objects, strict=True):
        assert from_files.frames == from_arrays.frames
        assert from_files.matched_proposal == from_arrays.matched_proposal
        assert np.array_equal(from_files.j_per_frame, from_arrays.j_per_frame)
        assert np.array_equal(from_files.f_per_frame, from_arrays.f_per_frame)
        assert np.array_equal(from_files.area_per_frame, from_arrays.area_per_frame)


@pytest.fixture
def videos(tmp_path: Path) -> list[VideoRecord]:
    return write_dataset(tmp_path / "gt")


@pytest.mark.parametrize("task", TASKS)
def test_arrays_score_exactly_as_png_files(tmp_path: Path, videos: list[VideoRecord], task: str) -> None:
    evaluator = Evaluator(EvaluationConfig(task=task, workers=1))
    files = evaluator.evaluate(videos, write_predictions(tmp_path / "pred", videos))
    arrays = evaluator.evaluate_arrays(videos, frame_predictions)
    assert_identical(files, arrays)
    assert {obj.key for obj in files.objects} == {"alpha_1", "alpha_2", "beta_1", "beta_3"}
    assert 0.0 < files.global_scores()["J&F-Mean"] < 1.0  # imperfect, so the comparison means something


@pytest.mark.parametrize("task", TASKS)
def test_frame_order_does_not_matter(videos: list[VideoRecord], task: str) -> None:
    evaluator = Evaluator(EvaluationConfig(task=task, workers=1))
    in_order = evaluator.evaluate_arrays(videos, frame_predictions)
    reversed_order = evaluator.evaluate_arrays(videos, lambda video: reversed(list(frame_predictions(video))))
    assert_identical(in_order, reversed_order)


def test_frames_to_score_follow_the_task(videos: list[VideoRecord]) -> None:
    beta = videos[1]
    assert beta.name == "beta"
    assert Evaluator(EvaluationConfig(task="semi")).video_scorer(beta).frames_to_score == ["00002", "00004"]
    assert Evaluator(EvaluationConfig(task="unsupervised")).video_scorer(beta).frames_to_score == [
        "00000", "00002", "00004", "00006"]


def test_evaluate_tallies_of_scorers_equals_evaluate_arrays(videos: list[VideoRecord]) -> None:
    evaluator = Evaluator()
    tallies = []
    for video in videos:
        scorer = evaluator.video_scorer(video)
        for frame, labels in frame_predictions(video):
            scorer.add(frame, labels)
        tallies.append(scorer.finish())
    assert_identical(evaluator.evaluate_arrays(videos, frame_predictions), evaluator.evaluate_tallies(tallies))


def test_unscored_frames_are_ignored_whatever_they_hold(videos: list[VideoRecord]) -> None:
    alpha, beta = videos
    scorer = Evaluator().video_scorer(beta)
    scorer.add("00001", np.zeros((3, 3), np.float32))  # not annotated
    scorer.add("00000", np.zeros((5, 5), np.uint8))  # annotated, not scored (semi: first frame)
    scorer.add("99999", np.zeros((H, W), np.uint8))  # not a frame of the video
    for frame in scorer.frames_to_score:
        scorer.add(frame, np.zeros((H, W), np.uint8))
    assert sorted(scorer.finish().tallies) == ["00002", "00004"]


@pytest.mark.parametrize("task", TASKS)
def test_missing_scored_frame_names_video_and_frame(videos: list[VideoRecord], task: str) -> None:
    def without_frame_3(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        return ((frame, labels) for frame, labels in frame_predictions(video) if frame != "00003")

    with pytest.raises(InputError, match=r"alpha frame 00003: prediction missing"):
        Evaluator(EvaluationConfig(task=task)).evaluate_arrays(videos, without_frame_3)


def test_size_mismatch_names_video_and_frame(videos: list[VideoRecord]) -> None:
    scorer = Evaluator().video_scorer(videos[0])
    with pytest.raises(InputError, match=r"alpha frame 00002: size 31x24 differs from the ground truth 32x24"):
        scorer.add("00002", np.zeros((H, W - 1), np.uint8))


def test_bad_label_maps_name_video_and_frame(videos: list[VideoRecord]) -> None:
    scorer = Evaluator().video_scorer(videos[0])
    with pytest.raises(InputError, match=r"alpha frame 00001: .*\[H, W\]"):
        scorer.add("00001", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(InputError, match=r"alpha frame 00001: .*integer ids"):
        scorer.add("00001", np.zeros((H, W), np.float32))
    with pytest.raises(InputError, match=r"alpha frame 00001: .*outside 0\.\.65535"):
        scorer.add("00001", np.full((H, W), -1, np.int64))


def test_prediction_given_twice_is_an_error(videos: list[VideoRecord]) -> None:
    scorer = Evaluator().video_scorer(videos[0])
    scorer.add("00001", alpha_prediction(1))
    with pytest.raises(InputError, match=r"alpha frame 00001: prediction given twice"):
        scorer.add("00001", alpha_prediction(1))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_binary_0_255_array_reads_as_object_1_like_the_png(tmp_path: Path, videos: list[VideoRecord],
                                                           dtype: type) -> None:
    beta = [videos[1]]  # scores objects 1 and 3; a 0/255 prediction is object 1

    def binary(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        for frame, labels in frame_predictions(video):
            yield frame, np.where(labels == 1, 255, 0).astype(dtype)

    def as_ids(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        for frame, labels in binary(video):
            yield frame, (labels == 255).astype(np.uint8)

    for video in beta:
        for frame, labels in binary(video):
            write_mask(tmp_path / "pred" / video.name / f"{frame}.png", labels)
    evaluator = Evaluator(EvaluationConfig(workers=1))
    from_files = evaluator.evaluate(beta, tmp_path / "pred")
    from_arrays = evaluator.evaluate_arrays(beta, binary)
    assert_identical(from_files, from_arrays)
    assert_identical(evaluator.evaluate_arrays(beta, as_ids), from_arrays)
    objects = {obj.key: obj for obj in from_arrays.objects}
    assert objects["beta_1"].j.mean > 0.5 and objects["beta_3"].j.mean == 0.0
    assert from_arrays.warnings == []  # 255 is not reported as an extra id
