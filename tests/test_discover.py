"""`vosuite discover` / Discoverer: three streamed passes give the batch clustering's labels on every
frame; proposals as palette PNGs; bad input (too few frames, a checkpoint of the wrong kind) is one
line and exit 2; the bba models are registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import vosuite
from conftest import one_line_error, write_box_clip
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model, save_model
from vosuite.io.frames import open_frames
from vosuite.io.masks import read_mask
from vosuite.models.bba import BbAConfig, BetrayedByAttention
from vosuite.nn.vit import ViTConfig
from vosuite.unsupervised.clustering import discover_objects
from vosuite.unsupervised.discoverer import Discoverer

H, W, FRAMES = 72, 96, 12
#: random weights attend almost uniformly: a small threshold still splits the clip into several proposals
TAU = 2e-3


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("discover")
    paths = write_box_clip(root, FRAMES, H, W)
    torch.manual_seed(0)
    model = BetrayedByAttention(BbAConfig("bba-vits16", backbone=ViTConfig("tiny", 16, 384, 1, 6)))
    paths["ckpt"] = save_model(model, root / "bba.pt", inference_size=64)
    torch.manual_seed(0)
    paths["deaot"] = save_model(create_model("deaot-t", weights=None), root / "deaot.pt")
    return paths


def test_streamed_discovery_equals_the_batch_clustering(case: dict) -> None:
    discoverer = Discoverer("bba-vits16", case["ckpt"], tau=TAU, ratio=4, progress=False)
    assert discoverer.size == 64  # the checkpoint's internal size
    streamed = list(discoverer.discover(case["frames"]))
    assert [index for index, _ in streamed] == list(range(FRAMES))  # every frame, the last included
    with torch.no_grad():
        keys = torch.stack([discoverer.keys(frame.rgb) for frame in open_frames(case["frames"])])
    batch = discover_objects(discoverer.model.block, keys, tau=TAU, ratio=4)
    assert discoverer.proposals == len(batch.centroids) >= 2
    for (_, labels), grid in zip(streamed, batch.labels, strict=True):
        assert labels.shape == (H, W) and labels.dtype == np.uint8
        assert set(np.unique(labels)) <= set(range(1, discoverer.proposals + 1))
        rows = (np.arange(H) * grid.shape[0]) // H  # nearest upsampling of the patch grid
        cols = (np.arange(W) * grid.shape[1]) // W
        assert np.array_equal(labels, grid.numpy()[rows][:, cols])


def test_cli_writes_proposals_and_refuses_bad_input(case: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["discover", str(case["frames"]), "--out", str(out), "--model", "bba-vits16", "--checkpoint",
                 str(case["ckpt"]), "--ratio", "4", "--overlay", str(tmp_path / "o.mp4"), "--no-progress"]) == 0
    assert "proposals" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == [f"{t:05d}.png" for t in range(FRAMES)]
    assert read_mask(out / "00000.png").shape == (H, W) and (tmp_path / "o.mp4").stat().st_size > 0
    short = tmp_path / "short"
    short.mkdir()
    for path in sorted(case["frames"].iterdir())[:3]:
        (short / path.name).symlink_to(path)
    assert main(["discover", str(short), "--out", str(tmp_path / "a"), "--model", "bba-vits16", "--checkpoint",
                 str(case["ckpt"]), "--no-progress"]) == 2
    assert "3 frame(s); discovery needs at least 10" in one_line_error(capsys)
    assert main(["discover", str(case["frames"]), "--out", str(tmp_path / "b"), "--checkpoint",
                 str(case["deaot"]), "--no-progress"]) == 2
    assert "not a Betrayed-by-Attention model" in one_line_error(capsys)
    assert main(["discover", str(case["frames"]), "--out", str(tmp_path / "c"), "--model", "bba-vits8",
                 "--checkpoint", str(case["ckpt"]), "--no-progress"]) == 2
    assert "holds bba-vits16 weights, not bba-vits8" in one_line_error(capsys)
    # without --model, the model the checkpoint holds (a `method: bba` run's final.pt)
    assert main(["discover", str(case["frames"]), "--out", str(tmp_path / "d"), "--checkpoint", str(case["ckpt"]),
                 "--ratio", "4", "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "d").glob("*.png")) == sorted(p.name for p in out.glob("*.png"))


def test_bba_models_are_registered_and_unsupervised(case: dict) -> None:
    assert {"bba-vits8", "bba-vits16"} <= set(vosuite.list_models("bba"))
    with pytest.raises(InputError, match="unsupervised model"):
        vosuite.Segmenter(model="bba-vits16", checkpoint=case["ckpt"])


def test_single_object_rule() -> None:
    from vosuite.unsupervised.clustering import border_and_area, foreground_proposal

    labels = np.ones((10, 12), np.uint8)  # proposal 1 wraps the frame
    labels[3:7, 4:8] = 2  # proposal 2 sits inside
    labels[0:2, 0:2] = 3  # proposal 3 in a corner
    border, area = border_and_area(labels)
    assert area == {1: 100, 2: 16, 3: 4} and border[3] == 3 and 2 not in border
    assert foreground_proposal(border, area) == 2
    assert foreground_proposal({1: 5}, {1: 50, 2: 0}) == 1  # empty proposals never win


def test_cli_single_object(case: dict, tmp_path: Path) -> None:
    out = tmp_path / "single"
    assert main(["discover", str(case["frames"]), "--out", str(out), "--model", "bba-vits16", "--checkpoint",
                 str(case["ckpt"]), "--ratio", "4", "--tau", str(TAU), "--single-object", "--no-progress"]) == 0
    masks = [read_mask(out / f"{t:05d}.png") for t in range(FRAMES)]
    assert all(set(np.unique(m)) <= {0, 1} for m in masks) and any(m.any() for m in masks)


def test_the_motion_rule_picks_the_proposal_that_best_overlaps_the_moving_region() -> None:
    """motion_proposal against the IoU of each proposal with the moving region, computed directly."""
    from vosuite.unsupervised.clustering import border_and_area, motion_proposal

    rng = np.random.default_rng(0)
    labels = [rng.integers(1, 5, (20, 30)) for _ in range(4)]
    moving = [rng.random((20, 30)) < 0.3 for _ in range(4)]
    labels[0][5:12, 5:15] = 3
    moving[0][5:12, 5:15] = True
    overlap: dict[int, int] = {}
    area: dict[int, int] = {}
    for frame, region in zip(labels, moving, strict=True):
        for pid, count in border_and_area(np.where(region, frame, 0))[1].items():
            overlap[pid] = overlap.get(pid, 0) + count
        for pid, count in border_and_area(frame)[1].items():
            area[pid] = area.get(pid, 0) + count
    total = sum(int(r.sum()) for r in moving)
    iou = {pid: sum(int(((f == pid) & r).sum()) for f, r in zip(labels, moving, strict=True))
           / sum(int(((f == pid) | r).sum()) for f, r in zip(labels, moving, strict=True)) for pid in range(1, 5)}
    assert motion_proposal(overlap, area, total) == max(iou, key=iou.get)
    with pytest.raises(ValueError, match="no proposal"):
        motion_proposal({}, {}, 0)


def test_single_object_output_with_either_foreground_rule(case: dict, capsys) -> None:
    """Both rules give 0/1 maps of one proposal; an unknown rule is one line."""
    for rule in ("border", "motion"):
        discoverer = Discoverer("bba-vits16", case["ckpt"], tau=TAU, ratio=4, progress=False, foreground=rule)
        outputs = list(discoverer.single_object(case["frames"]))
        assert len(outputs) == FRAMES and all(set(np.unique(m)) <= {0, 1} for _, m in outputs)
        assert 1 <= discoverer.foreground <= discoverer.proposals
    with pytest.raises(InputError, match="--foreground 'centre': use border or motion"):
        Discoverer("motion-saliency", foreground="centre")


def test_bba_on_a_mobilenetv2_reads_its_stride_16_features() -> None:
    """bba-mnv2: the tokens are the encoder's stage-2 map (96 channels at stride 16), CLS their mean."""
    torch.manual_seed(0)
    model = create_model("bba-mnv2", weights=None)
    images = torch.randn(2, 3, 96, 160)
    keys, cls = model.encode(images)
    with torch.no_grad():
        expected = model.encoder(images)[2]
    assert model.stride == 16 and keys.shape == (2, 96, 6, 10) and torch.equal(keys, expected)
    assert torch.allclose(cls, expected.mean(dim=(2, 3)))
    assert not any(p.requires_grad for p in model.encoder.parameters())
    with pytest.raises(ValueError, match="stage 3 has 1280 channels, the block 96"):
        BbAConfig("x", dim=96, backbone=None, cnn="mobilenetv2", cnn_stage=3)


def test_discover_runs_out_of_the_box_with_no_model_or_checkpoint(case: dict, tmp_path: Path, capsys) -> None:
    """`vosuite discover VIDEO --out DIR` and `Discoverer()` run the default discovery model, which
    needs no download: shipped weights, or a training-free baseline."""
    from vosuite.factory import ships_weights
    from vosuite.options import DEFAULT_DISCOVER_MODEL
    from vosuite.registry import get_spec

    spec = get_spec(DEFAULT_DISCOVER_MODEL)
    assert spec.task == "unsupervised" and (ships_weights(spec) or not spec.trained)
    assert Discoverer(progress=False).model.cfg.name == spec.architecture
    out = tmp_path / "out"
    assert main(["discover", str(case["frames"]), "--out", str(out), "--no-progress"]) == 0
    assert len(list(out.glob("*.png"))) == FRAMES and "proposals" in capsys.readouterr().out
