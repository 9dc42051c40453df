"""The DAVIS evaluator (vosuite.metrics.evaluator) on tiny generated DAVIS-2017-style trees:
object ids, frames scored, prediction reading rules, input errors, unsupervised matching, void,
and the CSV / JSON output."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import H, W, blank, box, evaluate, write_predictions, write_tree  # noqa: F401
from vosuite.datasets import VideoRecord, open_dataset
from vosuite.errors import InputError
from vosuite.io.masks import write_mask
from vosuite.metrics import boundary_f_measure, region_similarity
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.metrics.results import COLUMNS, EvaluationResult


def by_key(result: EvaluationResult) -> dict:
    return {obj.key: obj for obj in result.objects}


def moving_boxes(num_frames: int, ids: tuple[int, ...] = (1,)) -> list[np.ndarray]:
    masks = []
    for t in range(num_frames):
        labels = blank()
        for k, object_id in enumerate(ids):
            labels = box(labels, object_id, (2 + 10 * k, 8 + 10 * k), (2 + 2 * t, 10 + 2 * t))
        masks.append(labels)
    return masks


# ---------------------------------------------------------------------------------------------
# Objects and frames
# ---------------------------------------------------------------------------------------------


def test_perfect_prediction_with_non_contiguous_ids(tmp_path: Path) -> None:
    truth = moving_boxes(6, ids=(1, 3))
    result = evaluate(tmp_path, {"v": truth}, {"v": truth})
    objects = by_key(result)
    assert list(objects) == ["v_1", "v_3"]
    for obj in objects.values():
        assert obj.frames == ["00001", "00002", "00003", "00004"]  # first and last frame dropped
        assert obj.j_per_frame.tolist() == [1.0] * 4 and obj.f_per_frame.tolist() == [1.0] * 4
    assert result.global_scores() == dict.fromkeys(COLUMNS, 1.0) | {"J-Decay": 0.0, "F-Decay": 0.0}
    assert result.warnings == []


def test_per_frame_values_equal_single_frame_metrics(tmp_path: Path) -> None:
    truth = moving_boxes(6, ids=(1, 3))
    predicted = [np.roll(mask, shift=(t % 3) - 1, axis=1) for t, mask in enumerate(truth)]
    predicted[2] = box(predicted[2], 3, (20, 24), (0, 5))  # a stray blob of object 3 at the corner
    objects = by_key(evaluate(tmp_path, {"v": truth}, {"v": predicted}))
    for object_id in (1, 3):
        obj = objects[f"v_{object_id}"]
        expected_j = [region_similarity(predicted[t] == object_id, truth[t] == object_id) for t in range(1, 5)]
        expected_f = [boundary_f_measure(predicted[t] == object_id, truth[t] == object_id) for t in range(1, 5)]
        assert obj.j_per_frame.tolist() == expected_j
        assert obj.f_per_frame.tolist() == expected_f
        assert obj.j.mean == np.mean(expected_j) and obj.f.mean == np.mean(expected_f)


def test_object_appearing_later_is_scored_from_the_next_frame(tmp_path: Path) -> None:
    truth = moving_boxes(7)
    for t in range(2, 7):
        truth[t] = box(truth[t], 2, (15, 22), (20, 30))  # object 2 first annotated on frame 2
    objects = by_key(evaluate(tmp_path, {"v": truth}, {"v": truth}))
    assert objects["v_1"].frames == ["00001", "00002", "00003", "00004", "00005"]
    assert objects["v_2"].frames == ["00003", "00004", "00005"]
    assert objects["v_2"].j_per_frame.tolist() == [1.0, 1.0, 1.0]


def test_object_appearing_on_the_last_frame_is_left_out_with_a_warning(tmp_path: Path) -> None:
    truth = moving_boxes(6)
    truth[5] = box(truth[5], 2, (15, 22), (20, 30))  # object 2 only on the last frame: nothing to score
    result = evaluate(tmp_path, {"v": truth}, {"v": truth})
    assert [obj.key for obj in result.objects] == ["v_1"]
    assert result.global_scores()["J&F-Mean"] == 1.0  # not NaN
    assert any("object 2" in warning and "00005" in warning for warning in result.warnings)


def test_missing_object_in_prediction_scores_as_empty(tmp_path: Path) -> None:
    truth = moving_boxes(5, ids=(1, 2))
    predicted = [np.where(mask == 2, 0, mask).astype(np.uint8) for mask in truth]  # object 2 never predicted
    objects = by_key(evaluate(tmp_path, {"v": truth}, {"v": predicted}))
    assert objects["v_1"].j.mean == 1.0
    assert objects["v_2"].j_per_frame.tolist() == [0.0, 0.0, 0.0]
    assert objects["v_2"].f_per_frame.tolist() == [0.0, 0.0, 0.0]
    assert objects["v_2"].j.recall == 0.0


def test_empty_object_frames_follow_the_empty_mask_rules(tmp_path: Path) -> None:
    truth = moving_boxes(6, ids=(1, 2))
    truth[3] = np.where(truth[3] == 2, 0, truth[3]).astype(np.uint8)  # object 2 absent from frame 3
    predicted = [mask.copy() for mask in truth]
    predicted[2] = np.where(predicted[2] == 2, 0, predicted[2]).astype(np.uint8)  # missed on frame 2
    predicted[4] = np.full((H, W), 2, np.uint8)  # full frame of 2 on frame 4
    predicted[4][truth[4] == 1] = 1
    obj = by_key(evaluate(tmp_path, {"v": truth}, {"v": predicted}))["v_2"]
    assert obj.frames == ["00001", "00002", "00003", "00004"]
    assert obj.j_per_frame[1] == 0.0 and obj.f_per_frame[1] == 0.0  # empty prediction, present truth
    assert obj.j_per_frame[2] == 1.0 and obj.f_per_frame[2] == 1.0  # both empty


def test_extra_predicted_ids_warn_or_fail_when_strict(tmp_path: Path) -> None:
    truth = moving_boxes(5)
    predicted = [box(mask, 4, (18, 22), (25, 30)) for mask in truth]
    result = evaluate(tmp_path, {"v": truth}, {"v": predicted})
    assert len(result.warnings) == 1 and "v" in result.warnings[0] and "[4]" in result.warnings[0]
    assert by_key(result)["v_1"].j.mean == 1.0  # the extra id does not touch object 1
    videos = list(open_dataset("davis2017", tmp_path / "gt", split="val"))
    with pytest.raises(InputError, match=r"\[4\]"):
        Evaluator(EvaluationConfig(strict=True)).evaluate(videos, tmp_path / "pred")


def test_0_255_predictions_are_read_as_object_1(tmp_path: Path) -> None:
    truth = moving_boxes(5)
    write_tree(tmp_path / "gt", {"v": truth})
    folder = tmp_path / "pred" / "v"
    folder.mkdir(parents=True)
    for index, mask in enumerate(truth):
        Image.fromarray((mask > 0).astype(np.uint8) * 255, mode="L").save(folder / f"{index:05d}.png")
    videos = list(open_dataset("davis2017", tmp_path / "gt"))
    result = Evaluator().evaluate(videos, tmp_path / "pred")
    assert result.warnings == []
    assert by_key(result)["v_1"].j_per_frame.tolist() == [1.0, 1.0, 1.0]


def test_generic_layout_and_several_videos(tmp_path: Path) -> None:
    for name, masks in {"b10": moving_boxes(4), "b2": moving_boxes(5, ids=(2,))}.items():
        for folder in ("JPEGImages", "Annotations", "pred"):
            (tmp_path / folder / name).mkdir(parents=True)
        for index, mask in enumerate(masks):
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "JPEGImages" / name / f"{index}.png")
            write_mask(tmp_path / "Annotations" / name / f"{index}.png", mask)
            write_mask(tmp_path / "pred" / name / f"{index}.png", mask)
    videos = list(open_dataset("generic", tmp_path))
    calls: list[tuple[int, int]] = []
    result = Evaluator(EvaluationConfig(workers=1)).evaluate(
        videos, tmp_path / "pred", progress=lambda d, t: calls.append((d, t))
    )
    assert [obj.key for obj in result.objects] == ["b2_2", "b10_1"]
    assert by_key(result)["b10_1"].frames == ["1", "2"]
    assert calls == [(done, 9) for done in range(1, 10)]


# ---------------------------------------------------------------------------------------------
# Input errors
# ---------------------------------------------------------------------------------------------


def _setup(tmp_path: Path, num_frames: int = 5) -> tuple[list[VideoRecord], Path, list[np.ndarray]]:
    truth = moving_boxes(num_frames)
    write_tree(tmp_path / "gt", {"v": truth})
    write_predictions(tmp_path / "pred", "v", truth)
    return list(open_dataset("davis2017", tmp_path / "gt")), tmp_path / "pred", truth


def test_first_and_last_predictions_are_not_read_in_semi_supervised(tmp_path: Path) -> None:
    videos, pred, _ = _setup(tmp_path)
    (pred / "v" / "00000.png").unlink()
    (pred / "v" / "00004.png").write_bytes(b"not a png")
    result = Evaluator().evaluate(videos, pred)
    assert by_key(result)["v_1"].j.mean == 1.0
    with pytest.raises(InputError, match="00000.png"):
        Evaluator(EvaluationConfig(task="unsupervised")).evaluate(videos, pred)


def test_missing_prediction_names_the_file(tmp_path: Path) -> None:
    videos, pred, _ = _setup(tmp_path)
    (pred / "v" / "00002.png").unlink()
    with pytest.raises(InputError, match=r"v[/\\]00002\.png"):
        Evaluator().evaluate(videos, pred)
    with pytest.raises(InputError, match="prediction folder not found"):
        Evaluator().evaluate(videos, tmp_path / "nowhere")


def test_size_mismatch_names_the_file(tmp_path: Path) -> None:
    videos, pred, _ = _setup(tmp_path)
    write_mask(pred / "v" / "00003.png", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(InputError, match=r"00003\.png.*33x24.*32x24"):
        Evaluator().evaluate(videos, pred)


def test_corrupt_prediction_names_the_file(tmp_path: Path) -> None:
    videos, pred, _ = _setup(tmp_path)
    (pred / "v" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match=r"00001\.png"):
        Evaluator().evaluate(videos, pred)


def test_unknown_task_is_an_input_error() -> None:
    with pytest.raises(InputError, match="task"):
        EvaluationConfig(task="interactive")
    assert EvaluationConfig(task="semi").task == "semi-supervised"
    assert EvaluationConfig(task="unsup").task == "unsupervised"


# ---------------------------------------------------------------------------------------------
# Unsupervised task
# ---------------------------------------------------------------------------------------------


def test_too_many_proposals_raise(tmp_path: Path) -> None:
    videos, pred, truth = _setup(tmp_path, num_frames=3)
    write_mask(pred / "v" / "00001.png", box(truth[1], 21, (20, 24), (28, 32)))
    with pytest.raises(InputError, match="21"):
        Evaluator(EvaluationConfig(task="unsupervised")).evaluate(videos, pred)
    result = Evaluator(EvaluationConfig(task="unsupervised", max_proposals=21)).evaluate(videos, pred)
    assert by_key(result)["v_1"].matched_proposal == 1
    write_mask(pred / "v" / "00001.png", box(truth[1], 20, (20, 24), (28, 32)))
    assert Evaluator(EvaluationConfig(task="unsupervised")).evaluate(videos, pred).objects


def _pair_scores(truth: list[np.ndarray], predicted: list[np.ndarray], proposal: int, object_id: int) -> float:
    j = np.mean([region_similarity(p == proposal, t == object_id) for p, t in zip(predicted, truth, strict=True)])
    f = np.mean([boundary_f_measure(p == proposal, t == object_id) for p, t in zip(predicted, truth, strict=True)])
    return float((j + f) / 2)


def test_hungarian_matching_maximises_the_total_score(tmp_path: Path) -> None:
    truth, predicted = [], []
    for t in range(4):
        labels = box(blank(), 1, (4, 14), (2 + t, 12 + t))  # A: 10x10
        labels = box(labels, 2, (4, 14), (12 + t, 18 + t))  # B: 10x6, right of A
        truth.append(labels)
        guess = box(blank(), 1, (4, 14), (5 + t, 18 + t))  # proposal 1 = right 7 columns of A, and B
        guess = box(guess, 2, (4, 14), (2 + t, 5 + t))  # proposal 2 = left 3 columns of A
        guess = box(guess, 3, (20, 23), (26, 31))  # proposal 3: junk
        predicted.append(guess)
    # Proposal 1 scores best on A, yet the best total gives A to proposal 2 and B to proposal 1.
    scores = np.array([[_pair_scores(truth, predicted, p, g) for g in (1, 2)] for p in (1, 2, 3)])
    best = max(itertools.permutations(range(3), 2), key=lambda ps: scores[ps[0], 0] + scores[ps[1], 1])
    greedy_first = int(np.argmax(scores[:, 0]))
    assert best[0] != greedy_first  # the setup really needs a global assignment
    result = evaluate(tmp_path, {"v": truth}, {"v": predicted}, task="unsupervised")
    objects = by_key(result)
    assert objects["v_1"].matched_proposal == best[0] + 1
    assert objects["v_2"].matched_proposal == best[1] + 1
    for object_id, proposal in ((1, best[0] + 1), (2, best[1] + 1)):
        obj = objects[f"v_{object_id}"]
        assert obj.frames == ["00000", "00001", "00002", "00003"]  # every frame is scored
        assert obj.j_per_frame.tolist() == [
            region_similarity(p == proposal, t == object_id) for p, t in zip(predicted, truth, strict=True)
        ]
    assert result.warnings == []  # the unmatched proposal is ignored, not reported


def test_fewer_proposals_than_objects_pads_with_empty(tmp_path: Path) -> None:
    truth = moving_boxes(3, ids=(1, 2))
    predicted = [np.where(mask == 2, 1, 0).astype(np.uint8) for mask in truth]  # proposal 1 = object 2
    objects = by_key(evaluate(tmp_path, {"v": truth}, {"v": predicted}, task="unsupervised"))
    assert objects["v_2"].matched_proposal == 1 and objects["v_2"].j.mean == 1.0
    assert objects["v_1"].matched_proposal == 2
    assert objects["v_1"].j_per_frame.tolist() == [0.0, 0.0, 0.0]


def test_sequence_without_objects_gives_no_rows(tmp_path: Path) -> None:
    truth = [blank() for _ in range(3)]
    predicted = [box(blank(), 1, (2, 5), (2, 5)) for _ in range(3)]
    for task in ("semi", "unsupervised"):
        result = evaluate(tmp_path / task, {"v": truth}, {"v": predicted}, task=task)
        assert result.objects == []


def test_void_is_excluded_only_in_the_unsupervised_task(tmp_path: Path) -> None:
    truth, predicted = [], []
    for t in range(4):
        labels = box(blank(), 1, (4, 14), (4 + t, 14 + t))
        labels = box(labels, 255, (4, 14), (14 + t, 20 + t))  # void beside the object
        truth.append(labels)
        predicted.append(box(blank(), 1, (4, 14), (4 + t, 20 + t)))  # object + void
    semi = by_key(evaluate(tmp_path / "semi", {"v": truth}, {"v": predicted}))["v_1"]
    unsup = by_key(evaluate(tmp_path / "unsup", {"v": truth}, {"v": predicted}, task="unsupervised"))["v_1"]
    assert semi.j_per_frame.tolist() == [100 / 160] * 2
    assert semi.f_per_frame.tolist() == [boundary_f_measure(predicted[t] == 1, truth[t] == 1) for t in (1, 2)]
    assert semi.f.mean < 1.0
    assert unsup.j_per_frame.tolist() == [1.0] * 4
    assert unsup.f_per_frame.tolist() == [1.0] * 4


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def test_csv_and_json_output(tmp_path: Path) -> None:
    truth = moving_boxes(6, ids=(1, 2))
    predicted = [np.roll(mask, 1, axis=0) for mask in truth]
    result = evaluate(tmp_path, {"v": truth, "w": moving_boxes(5)}, {"v": predicted, "w": moving_boxes(5)})
    rows = list(csv.reader(io.StringIO(result.to_csv())))
    assert rows[0] == ["Sequence", "J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert [row[0] for row in rows[1:]] == ["Global", "v_1", "v_2", "w_1"]
    global_scores = result.global_scores()
    assert [float(v) for v in rows[1][1:]] == [round(global_scores[c], 6) for c in COLUMNS]
    assert global_scores["J-Mean"] == np.mean([obj.j.mean for obj in result.objects])
    assert global_scores["J&F-Mean"] == (global_scores["J-Mean"] + global_scores["F-Mean"]) / 2
    first = by_key(result)["v_1"]
    assert float(rows[2][2]) == round(first.j.mean, 6)

    result.save(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == result.to_csv()
    result.save(tmp_path / "out.json")
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["task"] == "semi-supervised"
    assert saved["global"] == global_scores
    assert list(saved["per_sequence"]) == ["v", "w"]
    assert saved["per_sequence"]["w"]["J-Mean"] == 1.0
    entry = saved["per_object"]["v_1"]
    assert entry["frames"] == first.frames
    assert entry["J_per_frame"] == first.j_per_frame.tolist()
    assert entry["F_per_frame"] == first.f_per_frame.tolist()
    assert entry["J-Mean"] == first.j.mean and entry["object_id"] == 1 and entry["matched_proposal"] is None
