"""The training-free baselines as first-class models: `--model flow | flow-dis | copy-first` in
segment / infer / Segmenter / create_model, with later masks adding objects; the flow core equals
the flow propagation it wraps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import vosuite
from conftest import one_line_error, write_box_clip
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.inference.baselines import BaselineCore
from vosuite.inference.flow_propagation import backward_flow, warp_labels
from vosuite.io.frames import open_frames
from vosuite.io.masks import read_mask
from vosuite.segment import Segmenter

H, W, FRAMES = 72, 96, 8


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_box_clip(tmp_path_factory.mktemp("baselines"), FRAMES, H, W)


@pytest.mark.parametrize("name, method", [("flow", "farneback"), ("flow-dis", "dis")])
def test_flow_core_equals_the_flow_warping(case: dict[str, Path], name: str, method: str) -> None:
    frames = [frame.rgb for frame in open_frames(case["frames"])]
    first = read_mask(case["first"])
    expected, previous = [first], cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    for rgb in frames[1:]:  # the propagation composed by hand: backward flow, then nearest warping
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        expected.append(warp_labels(expected[-1], backward_flow(gray, previous, method)))
        previous = gray
    got = list(Segmenter(model=name, progress=False).propagate(frames, {0: first}))
    assert all(np.array_equal(labels, want) for (_, labels), want in zip(got, expected, strict=True))
    assert (got[-1][1] == 1).sum() > 0.8 * (first == 1).sum()  # the moving box is followed


def test_copy_first_repeats_the_mask_and_adds_later_objects(case: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--masks-dir", str(case["later"]),
                 "--model", "copy-first", "--out", str(out), "--no-progress"]) == 0
    first, later = read_mask(case["first"]), read_mask(case["later"] / "00003.png")
    for t in range(FRAMES):
        want = first if t < 3 else np.where(later > 0, later, first)
        assert np.array_equal(read_mask(out / f"{t:05d}.png"), want)


def test_baselines_run_everywhere_without_weights(case: dict[str, Path], tmp_path: Path, capsys) -> None:
    tracker = vosuite.create_model("flow")
    assert sum(p.numel() for p in tracker.parameters()) == 0
    assert isinstance(Segmenter(model="flow-dis", progress=False).core(), BaselineCore)
    with pytest.raises(InputError, match="training-free baseline"):
        vosuite.create_model("flow", weights="x.pt")
    code = main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--model", "flow",
                 "--checkpoint", "x.pt", "--out", str(tmp_path / "a")])
    assert code == 2 and "takes no weights" in one_line_error(capsys)
    code = main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--model", "flow",
                 "--long-term-gap", "3", "--out", str(tmp_path / "b")])
    assert code == 2 and "training-free baseline" in one_line_error(capsys)
    coarse = Segmenter(model="flow", size=36, progress=False)
    small = list(coarse.propagate(case["frames"], {0: read_mask(case["first"])}))
    assert all(labels.shape == (H, W) for _, labels in small)  # flow at a short side of 36, labels at 72x96
