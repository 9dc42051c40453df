"""End-to-end tests of the ``vosuite`` command line."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.io.masks import read_mask, write_mask


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"), SyntheticClipConfig(num_frames=12, height=96, width=128))


def _copy_ground_truth_as_predictions(clip: Path, out: Path) -> Path:
    shutil.copytree(clip / "Annotations", out)
    return out


def test_eval_perfect_predictions_score_one(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    csv_path, json_path = tmp_path / "r.csv", tmp_path / "r.json"
    code = main(["eval", "--gt", str(clip), "--pred", str(predictions), "--out", str(csv_path), str(json_path),
                 "--no-progress"])
    assert code == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "Sequence,J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
    assert lines[1].startswith("Global,1.000000,1.000000,1.000000,0.000000")
    assert [line.split(",")[0] for line in lines[2:]] == ["shapes_1", "shapes_2"]
    payload = json.loads(json_path.read_text())
    assert payload["global"]["J&F-Mean"] == 1.0
    assert len(payload["per_object"]["shapes_1"]["J_per_frame"]) == 10  # first and last frames excluded
    assert "Global" in capsys.readouterr().out


def test_eval_scores_a_damaged_prediction_below_one(clip: Path, tmp_path: Path) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    damaged = predictions / "shapes" / "00005.png"
    write_mask(damaged, np.zeros_like(read_mask(damaged)))
    json_path = tmp_path / "r.json"
    assert main(["eval", "--gt", str(clip), "--pred", str(predictions), "--out", str(json_path),
                 "--no-progress"]) == 0
    per_frame = json.loads(json_path.read_text())["per_object"]["shapes_1"]["J_per_frame"]
    assert per_frame[4] == 0.0 and per_frame[3] == 1.0


def test_eval_missing_prediction_is_one_line_error(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    (predictions / "shapes" / "00003.png").unlink()
    assert main(["eval", "--gt", str(clip), "--pred", str(predictions), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "00003.png" in error and "Traceback" not in error


def test_eval_rejects_unknown_output_suffix(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    assert main(["eval", "--gt", str(clip), "--pred", str(predictions), "--out", str(tmp_path / "r.txt")]) == 2
    assert "--out" in capsys.readouterr().err


def test_eval_missing_ground_truth_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "pred").mkdir()
    assert main(["eval", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred")]) == 2
    assert "nope" in capsys.readouterr().err


def test_eval_plot_writes_png(clip: Path, tmp_path: Path) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    plot = tmp_path / "plot.png"
    assert main(["eval", "--gt", str(clip), "--pred", str(predictions), "--plot", str(plot), "--no-progress"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pack_writes_server_layout(clip: Path, tmp_path: Path) -> None:
    predictions = _copy_ground_truth_as_predictions(clip, tmp_path / "pred")
    out = tmp_path / "submission.zip"
    assert main(["pack", "--pred", str(predictions), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert len(names) == 12
    assert names[0] == "Annotations/shapes/00000.png"


def test_demo_flow_baseline_runs_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--tracker", "flow"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["global"]["J&F-Mean"] > 0.85  # the flow baseline follows the generated objects
    assert (out / "overlay.mp4").stat().st_size > 0
    assert len(list((out / "predictions" / "shapes").glob("*.png"))) == 40
    assert main(["demo", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_eval_on_davis2016_dev_ground_truth(shared_root: Path, tmp_path: Path) -> None:
    root = shared_root / "data" / "davis2016"
    predictions = tmp_path / "pred"
    for name in ("blackswan",):
        for mask in sorted((root / "Annotations" / "480p" / name).glob("*.png")):
            target = predictions / name / mask.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mask, target)  # 0/255 PNGs are read as object 1
    json_path = tmp_path / "r.json"
    assert main(["eval", "--gt", str(root), "--pred", str(predictions), "--sequences", "blackswan",
                 "--out", str(json_path), "--no-progress"]) == 0
    assert json.loads(json_path.read_text())["global"]["J&F-Mean"] == 1.0
