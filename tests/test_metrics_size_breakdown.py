"""J and F by object size (vosuite.metrics.size_breakdown), the areas the evaluator records, and
`vosuite compare` (vosuite.metrics.compare): checked against a direct numpy computation from the
generated masks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import blank, box, evaluate
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.metrics import boundary_f_measure, region_similarity
from vosuite.metrics.compare import load_run
from vosuite.metrics.size_breakdown import bin_labels, size_breakdown

FRAME_PIXELS = 24 * 32


def growing_box_video() -> list[np.ndarray]:
    """One object whose area spans every bin: absent on one frame, 1 % to 21 % of the frame on others."""
    heights = [2, 1, 3, 12, 0, 20, 4]  # rows x 8 columns: 16, 8, 24, 96, 0, 160, 32 pixels
    return [box(blank(), 1, (0, h), (0, 8)) if h else blank() for h in heights]


def shifted(masks: list[np.ndarray]) -> list[np.ndarray]:
    return [np.roll(mask, shift=1, axis=1) for mask in masks]


def test_labels_name_the_ranges() -> None:
    assert bin_labels((0.01, 0.05)) == ["absent", "<1%", "1%-5%", ">=5%"]
    assert bin_labels(()) == ["absent", "present"]


def test_bins_pool_frames_by_area_fraction() -> None:
    j = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    f = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    areas = np.array([0.0, 0.005, 0.01, 0.049, 0.05])  # absent, small, medium (edge), medium, large (edge)
    bins = size_breakdown([(j[:2], f[:2], areas[:2]), (j[2:], f[2:], areas[2:])], edges=(0.01, 0.05))
    assert [b.frames for b in bins] == [1, 1, 2, 1]
    assert [b.j_mean for b in bins] == pytest.approx([0.1, 0.2, 0.35, 0.5])
    assert [b.f_mean for b in bins] == pytest.approx([0.5, 0.6, 0.75, 0.9])
    assert bins[3].to_dict()["high"] is None  # plain JSON: no Infinity
    assert bins[2].low == 0.01 and bins[2].high == 0.05 and math.isinf(bins[3].high)


def test_empty_bin_is_nan_and_bad_edges_are_errors() -> None:
    bins = size_breakdown([(np.array([1.0]), np.array([1.0]), np.array([0.5]))])
    assert bins[0].frames == 0 and math.isnan(bins[0].j_mean) and bins[0].to_dict()["J-Mean"] is None
    for edges in ((0.05, 0.01), (0.0, 0.5), (1.5,)):
        with pytest.raises(InputError, match="size edges \\(--size-edges\\)"):
            size_breakdown([], edges)
    with pytest.raises(InputError, match="differ in length"):
        size_breakdown([(np.zeros(2), np.zeros(2), np.zeros(3))])


def test_evaluator_records_areas_and_the_breakdown_matches_a_direct_computation(tmp_path: Path) -> None:
    truth = growing_box_video()
    predicted = shifted(truth)
    result = evaluate(tmp_path, {"v": truth}, {"v": predicted})
    (obj,) = result.objects
    scored = range(1, len(truth) - 1)  # semi-supervised: first and last frames are not scored
    expected_areas = [np.count_nonzero(truth[t]) / FRAME_PIXELS for t in scored]
    assert obj.area_per_frame.tolist() == expected_areas
    edges = (0.02, 0.1)
    bins = result.size_breakdown(edges)
    for index, (low, high) in enumerate([(0, 0), (0, 0.02), (0.02, 0.1), (0.1, math.inf)]):
        chosen = [t for t, a in zip(scored, expected_areas, strict=True)
                  if (a == 0 if index == 0 else (a > 0 and low <= a < high))]
        assert bins[index].frames == len(chosen)
        expected_j = [region_similarity(predicted[t] == 1, truth[t] == 1) for t in chosen]
        expected_f = [boundary_f_measure(predicted[t] == 1, truth[t] == 1) for t in chosen]
        assert bins[index].j_mean == pytest.approx(np.mean(expected_j))
        assert bins[index].f_mean == pytest.approx(np.mean(expected_f))


def test_unsupervised_results_take_the_areas_of_the_matched_object(tmp_path: Path) -> None:
    truth = [box(box(blank(), 1, (0, 2), (0, 4)), 2, (10, 22), (8, 24)) for _ in range(3)]  # 8 and 192 px
    swapped = [np.where(mask == 1, 2, np.where(mask == 2, 1, 0)).astype(np.uint8) for mask in truth]
    result = evaluate(tmp_path, {"v": truth}, {"v": swapped}, task="unsupervised")
    objects = {obj.object_id: obj for obj in result.objects}
    assert objects[1].matched_proposal == 2 and objects[2].matched_proposal == 1
    assert objects[1].area_per_frame.tolist() == [8 / FRAME_PIXELS] * 3
    assert objects[2].area_per_frame.tolist() == [192 / FRAME_PIXELS] * 3
    bins = result.size_breakdown((0.02,))
    assert [b.frames for b in bins] == [0, 3, 3] and bins[1].j_mean == bins[2].j_mean == 1.0


def _saved_results(tmp_path: Path) -> tuple[Path, Path]:
    truth = growing_box_video()
    good, exact = tmp_path / "good.json", tmp_path / "exact.json"
    evaluate(tmp_path / "s", {"v": truth}, {"v": shifted(truth)}).save(good)
    evaluate(tmp_path / "p", {"v": truth}, {"v": truth}).save(exact)
    return good, exact


def test_json_round_trip_and_compare_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good, exact = _saved_results(tmp_path)
    truth = growing_box_video()
    result = evaluate(tmp_path / "again", {"v": truth}, {"v": shifted(truth)})
    saved = json.loads(good.read_text())
    assert [row["frames"] for row in saved["by_size"]] == [b.frames for b in result.size_breakdown()]
    loaded = load_run(good)
    assert loaded.name == "good" and loaded.objects == ["v_1"]
    for read, computed in zip(loaded.by_size, result.size_breakdown(), strict=True):
        assert read.frames == computed.frames
        assert read.j_mean == pytest.approx(computed.j_mean, nan_ok=True)
        assert read.f_mean == pytest.approx(computed.f_mean, nan_ok=True)
    plot = tmp_path / "compare.png"
    assert main(["compare", str(good), str(exact), "--names", "shifted", "perfect", "--per-sequence",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    perfect_row = next(line for line in out.splitlines() if "perfect" in line)
    assert perfect_row.count("1.000 | 1.000") == 3  # every present-object bin; absent frames score 1 too
    assert "shifted" in out and "1%-5%" in out and "warning" not in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    not_results = tmp_path / "other.json"
    not_results.write_text('{"a": 1}')
    assert main(["compare", str(not_results)]) == 2
    assert "other.json: not a results file" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err
    assert main(["compare", str(not_results), "--names", "a", "b"]) == 2
    assert "--names" in capsys.readouterr().err
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"global": {}, "per_sequence": {}, "per_object": []}')
    assert main(["compare", str(malformed)]) == 2
    assert "malformed.json: malformed results file" in capsys.readouterr().err
    good, _ = _saved_results(tmp_path)
    assert main(["compare", str(good), "--size-edges", "0.5", "0.1"]) == 2
    assert "--size-edges" in capsys.readouterr().err


def test_results_without_areas_or_other_objects_compare_with_gaps_and_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good, exact = _saved_results(tmp_path)
    data = json.loads(exact.read_text())
    for row in data["per_object"].values():
        del row["area_per_frame"]
    data["per_object"]["w_1"] = data["per_object"]["v_1"]
    (tmp_path / "b").mkdir()
    old = tmp_path / "b" / "good.json"
    old.write_text(json.dumps(data))
    assert load_run(old).by_size is None
    assert main(["compare", str(good), str(old)]) == 0
    out = capsys.readouterr().out
    assert str(old) in out  # repeated file names: rows named by path
    assert "scored other objects" in out
    old_row = next(line for line in out.splitlines() if "b/good.json" in line)
    cells = [cell.strip() for cell in old_row.split("\u2502")[1:-1]]  # rich's vertical bar
    assert cells[1] == "1.000" and cells[4:] == ["-"] * (len(cells) - 4)  # no size columns for the old file
