"""`vosuite segment` / `infer` / `convert aot` and the Segmenter API, on a random-weight DeAOT-T."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import box_frame, box_mask, one_line_error, write_box_clip
from vosuite import Segmenter
from vosuite.cli import main
from vosuite.factory import create_model
from vosuite.io.masks import read_mask, write_mask
from vosuite.io.video_writer import VideoWriter

H, W, FRAMES = 64, 96, 8


def _frame(t: int, rng: np.random.Generator) -> np.ndarray:
    return box_frame(t, rng, H, W)


def _first_mask() -> np.ndarray:
    return box_mask(H, W)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict[str, Path]:
    paths = write_box_clip(tmp_path_factory.mktemp("segment"), FRAMES, H, W)
    root = paths["root"]
    torch.manual_seed(0)
    random = create_model("deaot-t", weights=None)
    torch.save({"state_dict": {"module." + k: v for k, v in random.state_dict().items()}}, root / "aot.pth")
    assert main(["convert", "aot", str(root / "aot.pth"), str(root / "deaot-t.pt")]) == 0
    return {**paths, "ckpt": root / "deaot-t.pt"}


def _segment(case, out: Path, *extra: str) -> int:
    return main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--checkpoint", str(case["ckpt"]),
                 "--out", str(out), "--threads", "2", "--no-progress", *extra])


_one_line_error = one_line_error


def test_segment_new_object_overlay_and_report(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert _segment(case, out, "--masks-dir", str(case["later"]), "--overlay", str(tmp_path / "overlay.mp4")) == 0
    text = capsys.readouterr().out
    assert "fps" in text and "peak memory" in text and "(2 objects)" in text
    assert sorted(p.name for p in out.glob("[!.]*")) == [f"{t:05d}.png" for t in range(FRAMES)]
    assert np.array_equal(read_mask(out / "00000.png"), _first_mask())
    labels = [read_mask(out / f"{t:05d}.png") for t in range(FRAMES)]
    assert all(2 not in np.unique(x) for x in labels[:3])
    assert (labels[3][40:60, 53:83] == 2).all()
    assert (tmp_path / "overlay.mp4").stat().st_size > 0


def test_segment_video_file_with_size(case, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(video, fps=10) as writer:
        for t in range(4):
            writer.write(_frame(t, rng))
    out = tmp_path / "out"
    assert main(["segment", str(video), "--mask", str(case["first"]), "--checkpoint", str(case["ckpt"]),
                 "--out", str(out), "--size", "32", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("[!.]*")) == [f"{t:05d}.png" for t in range(4)]
    assert all(read_mask(p).shape == (H, W) for p in out.glob("[!.]*"))


def test_refuses_non_empty_output(case, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"x")
    assert _segment(case, out) == 2
    assert "not empty" in _one_line_error(capsys)
    # --overwrite replaces only what vosuite wrote: a file it did not write is named, and kept
    assert _segment(case, out, "--overwrite") == 2
    assert "old.png was not written by vosuite" in _one_line_error(capsys)
    assert (out / "old.png").read_bytes() == b"x"


def test_overwrite_replaces_only_vosuite_outputs(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert _segment(case, out) == 0
    first = read_mask(out / "00005.png")
    assert _segment(case, out, "--overwrite") == 0  # a rerun over its own outputs
    assert np.array_equal(read_mask(out / "00005.png"), first)
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")  # a new user puts notes beside the masks
    assert _segment(case, out, "--overwrite") == 2
    assert "notes.txt was not written by vosuite" in _one_line_error(capsys)
    assert (out / "notes.txt").read_text() == "mine" and (out / "00005.png").is_file()


def test_mask_errors(case, tmp_path, capsys):
    # same aspect ratio, half size: resized (nearest)
    small = tmp_path / "small.png"
    write_mask(small, _first_mask()[::2, ::2])
    assert main(["segment", str(case["frames"]), "--mask", str(small), "--checkpoint", str(case["ckpt"]),
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    capsys.readouterr()
    for name, mask, message in [("square.png", np.ones((50, 50), np.uint8), "aspect ratios differ"),
                                ("empty.png", np.zeros((H, W), np.uint8), "holds no object")]:
        write_mask(tmp_path / name, mask)
        code = main(["segment", str(case["frames"]), "--mask", str(tmp_path / name), "--checkpoint",
                     str(case["ckpt"]), "--out", str(tmp_path / "b"), "--no-progress"])
        err = _one_line_error(capsys)
        assert code == 2 and name in err and message in err


def test_unreadable_frame_keeps_written_outputs(case, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted(case["frames"].iterdir())[:6]:
        (frames / path.name).symlink_to(path)
    (frames / "00004.jpg").unlink()
    (frames / "00004.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["segment", str(frames), "--mask", str(case["first"]), "--checkpoint", str(case["ckpt"]),
                 "--out", str(out), "--no-progress"])
    err = _one_line_error(capsys)
    assert code == 2 and "00004.jpg" in err
    assert sorted(p.name for p in out.glob("[!.]*")) == [f"{t:05d}.png" for t in range(4)]


def test_missing_weights_and_bad_checkpoints(case, tmp_path, capsys):
    code = main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--model", "deaot-s",
                 "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert code == 2 and "vosuite convert aot" in err and "--checkpoint" in err and "vosuite train" in err
    # vosuite checkpoints carry their variant
    code = main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--checkpoint", str(case["ckpt"]),
                 "--model", "deaot-s", "--out", str(tmp_path / "o")])
    assert code == 2 and "holds deaot-t weights" in _one_line_error(capsys)
    state = torch.load(case["root"] / "aot.pth", weights_only=True)["state_dict"]
    del state["module.id_norm.weight"]
    state["module.extra.weight"] = torch.zeros(2)
    torch.save({"ema": state}, tmp_path / "bad.pth")
    code = main(["convert", "aot", str(tmp_path / "bad.pth"), str(tmp_path / "bad.pt")])
    err = _one_line_error(capsys)
    assert code == 2 and "1 missing keys (id_norm.weight)" in err and "1 unexpected keys (extra.weight)" in err
    assert not (tmp_path / "bad.pt").exists()
    assert main(["convert", "aot", str(case["root"] / "aot.pth"), str(case["ckpt"])]) == 2
    assert "exists" in _one_line_error(capsys)


def test_converted_checkpoint_format(case):
    ckpt = torch.load(case["ckpt"], weights_only=True)
    assert ckpt["format"] == "vosuite" and ckpt["model"]["name"] == "deaot-t"
    assert ckpt["model"]["config"]["num_layers"] == 1
    original = torch.load(case["root"] / "aot.pth", weights_only=True)["state_dict"]
    assert set(ckpt["state_dict"]) == {k[len("module."):] for k in original}
    assert all(torch.equal(ckpt["state_dict"][k[len("module."):]], v) for k, v in original.items())


def test_half_checkpoint_keeps_the_model_and_its_inference_size(case, tmp_path, capsys):
    """`vosuite convert half`: float16 tensors, about half the bytes, the same network after the
    cast back; a checkpoint's inference.size becomes the Segmenter's default --size."""
    from vosuite.factory import create_model, save_model

    sized = save_model(create_model(weights=case["ckpt"]), tmp_path / "sized.pt", inference_size=48)
    assert main(["convert", "half", str(sized), str(tmp_path / "half.pt")]) == 0
    assert "float16" in capsys.readouterr().out
    half = torch.load(tmp_path / "half.pt", weights_only=True)
    assert {v.dtype for v in half["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert half["inference"] == {"size": 48}
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * sized.stat().st_size
    full, halved = create_model(weights=sized), create_model(weights=tmp_path / "half.pt")
    for key, value in full.state_dict().items():
        assert torch.allclose(halved.state_dict()[key], value, rtol=1e-3, atol=1e-4), key
    assert Segmenter(checkpoint=tmp_path / "half.pt", progress=False).size == 48
    assert Segmenter(checkpoint=tmp_path / "half.pt", size=32, progress=False).size == 32
    assert Segmenter(checkpoint=case["ckpt"], progress=False).size is None
    assert main(["convert", "half", str(case["root"] / "aot.pth"), str(tmp_path / "x.pt")]) == 2
    assert "not a vosuite checkpoint" in _one_line_error(capsys)
    assert main(["convert", "half", str(sized), str(tmp_path / "half.pt")]) == 2
    assert "exists" in _one_line_error(capsys)


def test_python_api(case, tmp_path):
    threads = torch.get_num_threads()
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    report = seg.segment(case["frames"], case["first"], tmp_path / "out", masks_dir=case["later"])
    assert report.frames == FRAMES and report.objects == 2 and report.fps > 0 and report.peak_memory_mib > 0
    assert torch.get_num_threads() == threads  # the library sets no threads
    core = seg.core()
    rgb = np.asarray(Image.open(case["frames"] / "00000.jpg").convert("RGB"))
    prob = core.step(rgb, _first_mask())
    assert prob.shape == (2, H, W)
    assert core.step(rgb).shape == (2, H, W)


def _generic_tree(root: Path) -> None:
    rng = np.random.default_rng(1)
    for video, late in (("alpha", False), ("beta", True)):
        (root / "JPEGImages" / video).mkdir(parents=True)
        for t in range(5):
            Image.fromarray(_frame(t, rng)).save(root / "JPEGImages" / video / f"{t:05d}.jpg")
            mask = np.zeros((H, W), np.uint8)
            mask[10 + t:30 + t, 20:40] = 1
            if late and t >= 2:
                mask[40:60, 50 + t:80 + t] = 2
            write_mask(root / "Annotations" / video / f"{t:05d}.png", mask)


def test_infer_generic_then_eval(case, tmp_path, capsys):
    gt = tmp_path / "gt"
    _generic_tree(gt)
    preds = tmp_path / "preds"
    assert main(["infer", "--dataset", "generic", "--root", str(gt), "--out", str(preds),
                 "--checkpoint", str(case["ckpt"]), "--no-progress"]) == 0
    assert "segmented 10 frames (3 objects)" in capsys.readouterr().out
    for video in ("alpha", "beta"):
        assert sorted(p.name for p in (preds / video).iterdir()) == [f"{t:05d}.png" for t in range(5)]
    # the object that starts at frame 2 of beta is added there (its annotation merged in)
    beta2 = read_mask(preds / "beta" / "00002.png")
    assert (beta2[40:60, 52:82] == 2).all()
    assert 2 not in np.unique(read_mask(preds / "beta" / "00001.png"))
    assert main(["eval", "--gt", str(gt), "--pred", str(preds), "--dataset", "generic", "--no-progress",
                 "--out", str(tmp_path / "results.json")]) == 0
    assert (tmp_path / "results.json").is_file()
    # a second run refuses the full output folder
    assert main(["infer", "--dataset", "generic", "--root", str(gt), "--out", str(preds),
                 "--checkpoint", str(case["ckpt"]), "--no-progress"]) == 2
    assert "not empty" in _one_line_error(capsys)


def test_infer_youtubevos_adds_objects_at_their_first_frame(case, tmp_path, capsys):
    valid = tmp_path / "ytvos" / "valid"
    (valid / "JPEGImages" / "vid1").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for t in range(4):
        Image.fromarray(_frame(t, rng)).save(valid / "JPEGImages" / "vid1" / f"{5 * t:05d}.jpg")
    write_mask(valid / "Annotations" / "vid1" / "00000.png", _first_mask() * 3)
    second = np.zeros((H, W), np.uint8)
    second[40:60, 51:81] = 5
    write_mask(valid / "Annotations" / "vid1" / "00005.png", second)
    objects = {"3": {"frames": ["00000", "00005"]}, "5": {"frames": ["00005", "00010"]}}
    (valid / "meta.json").write_text(json.dumps({"videos": {"vid1": {"objects": objects}}}))
    preds = tmp_path / "preds"
    assert main(["infer", "--dataset", "youtubevos", "--root", str(tmp_path / "ytvos"), "--split", "valid",
                 "--out", str(preds), "--checkpoint", str(case["ckpt"]), "--no-progress"]) == 0
    assert "(2 objects)" in capsys.readouterr().out
    assert sorted(p.name for p in (preds / "vid1").iterdir()) == ["00000.png", "00005.png", "00010.png", "00015.png"]
    assert set(np.unique(read_mask(preds / "vid1" / "00000.png"))) == {0, 3}
    assert (read_mask(preds / "vid1" / "00005.png")[40:60, 51:81] == 5).all()
