"""Training-free unsupervised proposals (centred ellipse, motion saliency) and `vosuite discover`
running them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, render_clip, write_clip
from vosuite.errors import InputError
from vosuite.io.masks import read_mask
from vosuite.unsupervised.baselines import (
    MotionSaliencyConfig,
    centred_ellipse,
    motion_saliency,
    residual_motion,
)
from vosuite.unsupervised.discoverer import Discoverer


def test_centred_ellipse_has_the_area_and_symmetry_of_its_definition() -> None:
    mask = centred_ellipse(241, 321, (0.4, 0.5))
    expected = np.pi * (0.4 * 321 / 2) * (0.5 * 241 / 2)
    assert abs(mask.sum() / expected - 1) < 0.005  # measured 0.0003 (pixel-grid discretisation)
    assert np.array_equal(mask, mask[::-1]) and np.array_equal(mask, mask[:, ::-1]) and mask[120, 160] == 1


def test_residual_motion_removes_an_affine_camera_motion() -> None:
    height, width = 60, 80
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    affine = np.array([[1.02, 0.01, 1.5], [-0.01, 0.98, -0.7]])
    flow = np.stack([affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2] - xs,
                     affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2] - ys], -1).astype(np.float32)
    flow[20:35, 30:50] += (3.0, -4.0)  # an object moving 5 px against the camera
    residual = residual_motion(flow, MotionSaliencyConfig(grid_step=4))
    assert residual[20:35, 30:50] == pytest.approx(5.0, abs=1e-4)
    outside = np.ones_like(residual, bool)
    outside[20:35, 30:50] = False
    assert residual[outside].max() < 1e-4  # measured 1.5e-5: RANSAC's least-squares refit in float32


def test_motion_saliency_finds_the_moving_object() -> None:
    frames, labels = render_clip(SyntheticClipConfig(num_frames=12, height=120, width=160, num_objects=1))
    proposals = list(motion_saliency(iter(frames), MotionSaliencyConfig(size=120)))
    assert len(proposals) == len(frames) and all(p.shape == (120, 160) for p in proposals)
    ious = [((p > 0) & (gt > 0)).sum() / ((p > 0) | (gt > 0)).sum() for p, gt in zip(proposals, labels, strict=True)]
    # measured with DIS flow: mean 0.784, lowest 0.659 (the flow spills past the object's edges;
    # Farneback's smoother flow: mean 0.38)
    assert np.mean(ious) > 0.78 and min(ious) > 0.65, ious


def test_a_single_frame_gets_the_ellipse() -> None:
    frame = np.zeros((30, 40, 3), np.uint8)
    (only,) = motion_saliency([frame])
    assert np.array_equal(only, centred_ellipse(30, 40))


def test_discover_runs_the_baselines(tmp_path: Path) -> None:
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=12, height=72, width=96, num_objects=1))
    out = tmp_path / "out"
    assert main(["discover", str(root / "JPEGImages" / "shapes"), "--model", "motion-saliency", "--out", str(out),
                 "--no-progress", "--threads", "1"]) == 0
    masks = sorted(out.glob("*.png"))
    assert len(masks) == 12 and set(np.unique(read_mask(masks[5]))) == {0, 1}
    ellipse = list(Discoverer("ellipse", progress=False).single_object(root / "JPEGImages" / "shapes"))
    assert len(ellipse) == 12 and np.array_equal(ellipse[0][1], centred_ellipse(72, 96))


def test_baselines_refuse_the_wrong_command_and_weights(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InputError, match="takes no weights"):
        Discoverer("ellipse", checkpoint=tmp_path / "w.pt")
    with pytest.raises(InputError, match="follows given masks"):
        Discoverer("flow")
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=48, width=64))
    code = main(["segment", str(root / "JPEGImages" / "shapes"), "--model", "ellipse", "--mask",
                 str(root / "Annotations" / "shapes" / "00000.png"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unsupervised baseline" in err[0] and "vosuite discover" in err[0]
