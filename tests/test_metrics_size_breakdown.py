"""J and F by object size (vosuite.metrics.size_breakdown), the areas the evaluator records, and
`vosuite compare` (vosuite.metrics.compare): checked against a direct numpy computation from the
generated masks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from test_metrics_evaluator import blank, box, evaluate
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
    areas = np.array([0.0, 0.005, 0.01, 0.049, 0.5])  # absent, small, medium (edge), medium, large
    bins = size_breakdown([(j[:2], f[:2], areas[:2]), (j[2:], f[2:], areas[2:])], edges=(0.01, 0.05))
    assert [b.frames for b in bins] == [1, 1, 2, 1]
    assert [b.j_mean for b in bins] == pytest.approx([0.1, 0.2, 0.35, 0.5])
    assert [b.f_mean for b in bins] == pytest.approx([0.5, 0.6, 0.75, 0.9])
    assert bins[2].low == 0.01 and bins[2].high == 0.05 and math.isinf(bins[3].high)


def test_empty_bin_is_nan_and_bad_edges_are_errors() -> None:
    bins = size_breakdown([(np.array([1.0]), np.array([1.0]), np.array([0.5]))])
    assert bins[0].frames == 0 and math.isnan(bins[0].j_mean)
    for edges in ((0.05, 0.01), (0.0, 0.5), (1.5,)):
        with pytest.raises(InputError, match="size edges"):
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


def test_json_round_trip_and_compare_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = growing_box_video()
    result = evaluate(tmp_path, {"v": truth}, {"v": shifted(truth)})
    good, exact = tmp_path / "good.json", tmp_path / "exact.json"
    result.save(good)
    perfect = evaluate(tmp_path / "p", {"v": truth}, {"v": truth})
    perfect.save(exact)
    saved = json.loads(good.read_text())
    assert [row["frames"] for row in saved["by_size"]] == [b.frames for b in result.size_breakdown()]
    loaded = load_run(good)
    assert loaded.name == "good"
    assert [b.j_mean for b in loaded.by_size] == pytest.approx([b.j_mean for b in result.size_breakdown()],
                                                                nan_ok=True)
    plot = tmp_path / "compare.png"
    assert main(["compare", str(good), str(exact), "--names", "shifted", "perfect", "--per-sequence",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "shifted" in out and "perfect" in out and "1%-5%" in out
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


def test_results_without_areas_compare_without_size_columns(tmp_path: Path) -> None:
    truth = growing_box_video()
    result = evaluate(tmp_path, {"v": truth}, {"v": truth})
    data = result.to_dict()
    for row in data["per_object"].values():
        del row["area_per_frame"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert load_run(old).by_size is None
