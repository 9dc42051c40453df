"""DAVIS-2016 on the shared real data (when present) and DAVIS-2016/2017 on generated tiny trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosuite.datasets import Davis2016, Davis2017, natural_sorted, open_dataset, read_binary_0_255
from vosuite.datasets.base import read_split_file
from vosuite.errors import InputError
from vosuite.io.masks import VOID_ID, read_mask, write_mask

SHAPE = (16, 24)


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", SHAPE[::-1], (90, 120, 150)).save(path)


def _davis_video(root: Path, res: str, video: str, frames: int, mask: np.ndarray | None = None) -> None:
    """``frames`` JPEGs and one mask per frame (``mask`` palette PNG, else a 0/255 grayscale PNG)."""
    for index in range(frames):
        _jpeg(root / "JPEGImages" / res / video / f"{index:05d}.jpg")
        mask_path = root / "Annotations" / res / video / f"{index:05d}.png"
        if mask is not None:
            write_mask(mask_path, mask)
        else:
            gray = np.zeros(SHAPE, np.uint8)
            gray[4:10, 5:15] = 255
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(gray, mode="L").save(mask_path)


@pytest.fixture
def davis2016_real(shared_root: Path) -> Path:
    root = shared_root / "data" / "davis2016"
    if not root.is_dir():
        pytest.skip(f"real DAVIS-2016 data not found at {root}")
    return root


@pytest.fixture
def davis17(tmp_path: Path) -> Path:
    root = tmp_path / "DAVIS"
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:6, 2:6], mask[8:12, 10:20], mask[0, :] = 1, 2, VOID_ID
    _davis_video(root, "480p", "bike", 3, mask)
    _davis_video(root, "480p", "cat", 2, mask)
    _davis_video(root, "Full-Resolution", "bike", 2, mask)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("cat\nbike\n")
    (root / "ImageSets" / "2017" / "bad.txt").write_text("cat\nnope\n")
    return root


# -- real DAVIS-2016 ----------------------------------------------------------------------------


def test_real_davis2016_splits(davis2016_real: Path) -> None:
    train = open_dataset("davis2016", davis2016_real, "train")
    val = open_dataset("davis2016", davis2016_real, "val-dev")
    assert len(train) == 30 and len(val) == 5
    assert train.videos()[0] == "bear" and "blackswan" in val.videos()
    assert len(open_dataset("davis2016", davis2016_real)) == 35


def test_real_davis2016_video(davis2016_real: Path) -> None:
    dataset = Davis2016(davis2016_real, "val-dev")
    name = dataset.videos()[0]
    record = dataset.video(name)
    files = natural_sorted(p.stem for p in (davis2016_real / "JPEGImages" / "480p" / name).glob("*.jpg"))
    assert dataset.resolution_of(name) == "480p"
    assert record.frame_names == files and len(record.frame_paths) == len(files)
    assert record.annotated_frames == files  # DAVIS annotates every frame
    labels = record.labels(record.frame_names[0])
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert record.object_first_frames() == {1: record.frame_names[0]}


def test_real_davis2016_picks_resolution_per_video(davis2016_real: Path) -> None:
    dataset = Davis2016(davis2016_real, "train")
    assert dataset.resolution_of("bear") == "240p"
    assert dataset.video("bear").frame_paths[0].parent.parent.name == "240p"


# -- generated DAVIS-2016 ---------------------------------------------------------------------


def test_davis2016_official_split_lines(tmp_path: Path) -> None:
    _davis_video(tmp_path, "480p", "bear", 2)
    _davis_video(tmp_path, "480p", "boat", 1)
    split = tmp_path / "ImageSets" / "480p" / "train.txt"
    split.parent.mkdir(parents=True)
    lines = [
        f"/JPEGImages/480p/{v}/0000{i}.jpg /Annotations/480p/{v}/0000{i}.png"
        for v in ("boat", "bear")
        for i in (0, 1)
    ]
    split.write_text("\n".join(lines) + "\n")
    dataset = Davis2016(tmp_path, "train", resolution="480p")
    assert dataset.videos() == ["boat", "bear"]
    record = dataset.video("bear")
    assert record.read_labels is read_binary_0_255
    assert np.unique(record.labels("00001")).tolist() == [0, 1]


def test_davis2016_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing"):
        Davis2016(tmp_path / "missing")
    _davis_video(tmp_path, "480p", "bear", 1)
    with pytest.raises(InputError, match="no split 'val'"):
        Davis2016(tmp_path, "val")
    with pytest.raises(InputError, match="240p"):
        Davis2016(tmp_path, resolution="240p")


# -- generated DAVIS-2017 ---------------------------------------------------------------------


def test_davis2017_split_and_labels(davis17: Path) -> None:
    dataset = open_dataset("DAVIS-2017", davis17, "val")
    assert dataset.name == "davis2017" and dataset.videos() == ["cat", "bike"]
    bike = dataset.video("bike")
    assert bike.frame_names == ["00000", "00001", "00002"]  # 480p preferred over Full-Resolution
    assert bike.read_labels is read_mask
    assert np.unique(bike.labels("00000")).tolist() == [0, 1, 2, VOID_ID]
    assert bike.object_first_frames() == {1: "00000", 2: "00000"}
    assert [record.name for record in dataset] == ["cat", "bike"]


def test_davis2017_resolution_and_all_videos(davis17: Path) -> None:
    full = Davis2017(davis17, resolution="Full-Resolution")
    assert full.videos() == ["bike"] and len(full.video("bike").frame_names) == 2
    assert Davis2017(davis17).videos() == ["bike", "cat"]


def test_davis2017_split_errors(davis17: Path, tmp_path: Path) -> None:
    bad = davis17 / "ImageSets" / "2017" / "bad.txt"
    with pytest.raises(InputError, match=r"bad\.txt: video 'nope'"):
        Davis2017(davis17, "bad")
    with pytest.raises(InputError, match=r"bad\.txt: video 'nope'"):
        Davis2017(davis17, bad)
    with pytest.raises(InputError, match="not in the davis2017"):
        Davis2017(davis17, "val").video("dog")
    with pytest.raises(InputError, match="split file not found"):
        Davis2017(davis17, tmp_path / "none.txt")
    with pytest.raises(InputError, match="unknown dataset"):
        open_dataset("davis2019", davis17)
    with pytest.raises(InputError, match="no option 'all_frames'"):
        open_dataset("davis2017", davis17, all_frames=True)


def test_natural_sort_and_split_parsing(tmp_path: Path) -> None:
    assert natural_sorted(["f10", "f2", "f1", "F3"]) == ["f1", "f2", "F3", "f10"]
    split = tmp_path / "s.txt"
    split.write_text("# comment\nbear\n\n/JPEGImages/480p/boat/00000.jpg /Annotations/x.png\nbear\n")
    assert read_split_file(split) == ["bear", "boat"]
