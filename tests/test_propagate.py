"""The in-memory Python API: Segmenter.propagate (paths or arrays, prompts at any frame), equal to
what `vosuite segment` writes; no process-wide side effects; cores from the CPU affinity; one
preprocessing for training and inference; .bmp frames folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import box_frame, write_box_clip
from vosuite import cpu
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model, save_model
from vosuite.inference.preprocess import preprocess_image
from vosuite.io.frames import open_frames
from vosuite.io.masks import read_mask
from vosuite.segment import Segmenter
from vosuite.training.data.augment import Clip
from vosuite.training.data.clips import to_tensors

H, W, FRAMES = 72, 96, 8


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("propagate")
    paths = write_box_clip(root, FRAMES, H, W)
    torch.manual_seed(0)
    paths["ckpt"] = save_model(create_model("deaot-t", weights=None), root / "deaot-t.pt")
    return paths


def test_propagate_equals_segment_for_paths_and_arrays(case: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--masks-dir", str(case["later"]),
                 "--checkpoint", str(case["ckpt"]), "--out", str(out), "--no-progress"]) == 0
    written = [read_mask(out / f"{t:05d}.png") for t in range(FRAMES)]
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    prompts = {0: read_mask(case["first"]), 3: read_mask(case["later"] / "00003.png")}
    from_path = list(seg.propagate(case["frames"], prompts))
    rgb = [frame.rgb for frame in open_frames(case["frames"])]
    from_arrays = list(seg.propagate(iter(rgb), prompts))
    assert [index for index, _ in from_path] == list(range(FRAMES))
    for (_, a), (_, b), c in zip(from_path, from_arrays, written, strict=True):
        assert a.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(a, c)
    assert 2 not in from_path[2][1] and (from_path[3][1][40:60, 53:83] == 2).all()


def test_a_0_255_prompt_is_one_object(case: dict[str, Path]) -> None:
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    ids = read_mask(case["first"])
    binary = np.where(ids > 0, 255, 0).astype(np.uint8)
    expected = list(seg.propagate(case["frames"], {0: ids}))
    got = list(seg.propagate(case["frames"], {0: binary}))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(expected, got, strict=True))


def test_propagate_errors(case: dict[str, Path]) -> None:
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    rgb = [frame.rgb for frame in open_frames(case["frames"])][:3]
    with pytest.raises(InputError, match=r"prompts for frames \[5\] past the video's end \(3 frames\)"):
        list(seg.propagate(rgb, {0: read_mask(case["first"]), 5: read_mask(case["first"])}))
    before = [index for index, labels in seg.propagate(rgb, {1: read_mask(case["first"])}) if labels.any()]
    assert before[0] == 1  # frames before the first prompt are background


def test_the_library_sets_no_threads_and_no_seed(case: dict[str, Path]) -> None:
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    list(seg.propagate(case["frames"], {0: read_mask(case["first"])}))
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)


def test_cores_come_from_the_cpu_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 64)
    assert cpu.available_cores() == 1
    threads = torch.get_num_threads()
    try:
        assert cpu.set_threads(8) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(InputError, match="--threads must be a positive integer"):
        cpu.set_threads(0)


def test_training_and_inference_share_one_normalisation() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 17, 23, 3)).astype(np.float32)
    frames, _ = to_tensors(Clip(rgb, np.zeros((2, 17, 23), np.uint8)))
    for t in range(2):
        assert torch.equal(frames[t], preprocess_image(rgb[t])[0])


def test_bmp_frames_folder_segments(case: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "bmp"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t in range(3):
        Image.fromarray(box_frame(t, rng, H, W)).save(folder / f"{t:05d}.bmp")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--mask", str(case["first"]), "--checkpoint", str(case["ckpt"]),
                 "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
