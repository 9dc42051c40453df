"""The evaluator against numbers from the official davis2017-evaluation code.

``../shared/fixtures/davis_official/dev.json`` holds the official results for the 5 DAVIS-2016 dev
sequences and the synthetic prediction sets of ``../shared/tools/make_predictions.py``. The
predictions are regenerated once per module (their hashes must equal the fixture's), then every
set is evaluated and every global, per-sequence and per-frame number compared. Skips when the
shared data is absent.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data_root
from vosuite.datasets import VideoRecord, open_dataset
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.metrics.results import EvaluationResult

SEMI_SETS = ["gt", "copy_first", "erode", "dilate", "shift", "holes", "spurious"]
UNSUP_SETS = ["unsup"]
ALL_SETS = SEMI_SETS + UNSUP_SETS
STATISTICS = ["J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
TOLERANCE = 1e-12


def _task_key(set_name: str) -> str:
    return "unsupervised" if set_name in UNSUP_SETS else "semi-supervised"


def close(got: float, want: float) -> bool:
    return (math.isnan(got) and math.isnan(want)) or abs(got - want) <= TOLERANCE


@pytest.fixture(scope="module")
def shared() -> Path:
    root = shared_data_root()
    needed = ["data/davis2016/ImageSets/val-dev.txt", "fixtures/davis_official/dev.json", "tools/make_predictions.py"]
    if root is None or not all((root / path).exists() for path in needed):
        pytest.skip("shared DAVIS-2016 data, official fixture or make_predictions.py not found")
    return root


@pytest.fixture(scope="module")
def fixture(shared: Path) -> dict:
    return json.loads((shared / "fixtures/davis_official/dev.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def predictions(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("davis_preds")
    davis = shared / "data" / "davis2016"
    command = [
        sys.executable,
        str(shared / "tools" / "make_predictions.py"),
        "--davis-root",
        str(davis),
        "--sequences",
        str(davis / "ImageSets" / "val-dev.txt"),
        "--out",
        str(out),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    return out


@pytest.fixture(scope="module")
def videos(shared: Path) -> list[VideoRecord]:
    return list(open_dataset("davis2016", shared / "data" / "davis2016", split="val-dev"))


@pytest.fixture(scope="module", params=ALL_SETS)
def evaluated(
    request: pytest.FixtureRequest, predictions: Path, videos: list[VideoRecord], fixture: dict
) -> tuple[str, EvaluationResult, dict]:
    set_name = request.param
    task = _task_key(set_name)
    result = Evaluator(EvaluationConfig(task=task)).evaluate(videos, predictions / set_name)
    return set_name, result, fixture["results"][task][set_name]


def test_sequences_match_the_fixture(videos: list[VideoRecord], fixture: dict) -> None:
    assert [video.name for video in videos] == fixture["data"]["sequences"]
    assert {video.name: len(video.annotated_frames) for video in videos} == fixture["data"]["frames_per_sequence"]


@pytest.mark.parametrize("set_name", ALL_SETS)
def test_regenerated_predictions_have_the_fixture_hashes(set_name: str, predictions: Path, fixture: dict) -> None:
    manifest = json.loads((predictions / "manifest.json").read_text(encoding="utf-8"))
    expected = fixture["prediction_generator"]["prediction_hashes"][set_name]
    assert manifest["sets"][set_name]["per_sequence"] == expected["per_sequence"]
    assert manifest["sets"][set_name]["sha256_of_sequence_hashes"] == expected["sha256_of_sequence_hashes"]


def test_global_numbers(evaluated: tuple[str, EvaluationResult, dict]) -> None:
    set_name, result, expected = evaluated
    ours = result.global_scores()
    for name, want in expected["global"].items():
        assert close(ours[name], want), (set_name, name, ours[name], want)


def test_per_sequence_numbers(evaluated: tuple[str, EvaluationResult, dict]) -> None:
    set_name, result, expected = evaluated
    sequences = result.sequence_scores()
    assert list(sequences) == list(expected["per_sequence"])
    for sequence, want in expected["per_sequence"].items():
        (obj,) = [o for o in result.objects if o.sequence == sequence]
        assert obj.key == want["object_key"]
        got = {
            "J-Mean": obj.j.mean,
            "J-Recall": obj.j.recall,
            "J-Decay": obj.j.decay,
            "F-Mean": obj.f.mean,
            "F-Recall": obj.f.recall,
            "F-Decay": obj.f.decay,
        }
        for name in STATISTICS:
            assert close(got[name], want[name]), (set_name, sequence, name, got[name], want[name])
            assert close(sequences[sequence][name], want[name]), (set_name, sequence, name)
        assert close(sequences[sequence]["J&F-Mean"], want["J&F-Mean"]), (set_name, sequence)


def test_per_frame_values(evaluated: tuple[str, EvaluationResult, dict]) -> None:
    set_name, result, expected = evaluated
    for sequence, want in expected["per_sequence"].items():
        (obj,) = [o for o in result.objects if o.sequence == sequence]
        assert obj.frames == want["evaluated_frames"], (set_name, sequence)
        assert len(obj.frames) == want["n_evaluated_frames"]
        for ours, theirs in ((obj.j_per_frame, want["J_per_frame"]), (obj.f_per_frame, want["F_per_frame"])):
            assert ours.dtype == np.float64 and ours.shape == (len(theirs),)
            np.testing.assert_allclose(
                ours, np.array(theirs, dtype=np.float64), rtol=0, atol=TOLERANCE, err_msg=f"{set_name}/{sequence}"
            )


def test_unsupervised_matching(evaluated: tuple[str, EvaluationResult, dict]) -> None:
    set_name, result, expected = evaluated
    if set_name not in UNSUP_SETS:
        assert all(obj.matched_proposal is None for obj in result.objects)
        return
    for sequence, want in expected["per_sequence"].items():
        matching = want["unsupervised_matching"]
        (obj,) = [o for o in result.objects if o.sequence == sequence]
        assert obj.matched_proposal == matching["matched_proposal_id"], sequence
        scores = matching["proposal_scores"][str(obj.matched_proposal)]
        assert close(float(np.mean(obj.j_per_frame)), scores["J-Mean_over_frames"]), sequence
        assert close(float(np.mean(obj.f_per_frame)), scores["F-Mean_over_frames"]), sequence
        best = max(matching["proposal_scores"].values(), key=lambda s: s["assignment_score"])
        assert close(scores["assignment_score"], best["assignment_score"]), sequence
