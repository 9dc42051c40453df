"""YouTube-VOS on a generated tiny tree: mid-video objects, sparse valid annotations, all-frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosuite.datasets import YouTubeVOS, open_dataset
from vosuite.errors import InputError
from vosuite.io.masks import write_mask

SHAPE = (16, 24)


def _frames(folder: Path, indices: range) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in indices:
        Image.new("RGB", SHAPE[::-1], (index, 100, 50)).save(folder / f"{index:05d}.jpg")


def _mask(path: Path, *object_ids: int) -> None:
    labels = np.zeros(SHAPE, np.uint8)
    for object_id in object_ids:
        labels[object_id * 2 : object_id * 2 + 3, 2:8] = object_id
    write_mask(path, labels)


def _meta(split_dir: Path, objects: dict[str, list[str]]) -> None:
    videos = {"vid1": {"objects": {k: {"category": "cat", "frames": v} for k, v in objects.items()}}}
    (split_dir / "meta.json").write_text(json.dumps({"videos": videos}))


@pytest.fixture
def ytvos(tmp_path: Path) -> Path:
    """train: frames and masks every 5th frame; valid: sparse masks; valid_all_frames: every frame."""
    root = tmp_path / "ytvos"
    train, valid = root / "train", root / "valid"
    _frames(train / "JPEGImages" / "vid1", range(0, 20, 5))
    _mask(train / "Annotations" / "vid1" / "00000.png", 1)
    for index in (5, 10, 15):
        _mask(train / "Annotations" / "vid1" / f"{index:05d}.png", 1, 2)
    _meta(train, {"1": ["00000", "00005", "00010", "00015"], "2": ["00005", "00010", "00015"]})
    _frames(valid / "JPEGImages" / "vid1", range(0, 20, 5))
    _frames(valid / "JPEGImages" / "vid2", range(0, 10, 5))
    _mask(valid / "Annotations" / "vid1" / "00000.png", 1)
    _mask(valid / "Annotations" / "vid1" / "00005.png", 2)
    _meta(valid, {"1": ["00000", "00005", "00010"], "2": ["00005", "00010", "00015"]})
    _frames(root / "valid_all_frames" / "JPEGImages" / "vid1", range(0, 16))
    return root


def test_train_every_fifth_frame(ytvos: Path) -> None:
    dataset = open_dataset("youtubevos2019", ytvos, "train")
    record = dataset.video("vid1")
    assert record.frame_names == ["00000", "00005", "00010", "00015"]
    assert record.annotated_frames == record.frame_names
    assert record.first_frame_of_object == {1: "00000", 2: "00005"}


def test_valid_sparse_annotations(ytvos: Path) -> None:
    dataset = YouTubeVOS(ytvos, "valid")
    assert dataset.videos() == ["vid1", "vid2"]
    record = dataset.video("vid1")
    assert record.annotated_frames == ["00000", "00005"]
    assert record.object_first_frames() == {1: "00000", 2: "00005"}
    assert np.unique(record.labels("00005")).tolist() == [0, 2]
    other = dataset.video("vid2")  # absent from meta.json and unannotated
    assert other.annotated_frames == [] and other.object_first_frames() == {}


@pytest.mark.parametrize("args", [("valid", True), ("valid_all_frames", False)])
def test_all_frames(ytvos: Path, args: tuple[str, bool]) -> None:
    split, all_frames = args
    dataset = YouTubeVOS(ytvos, split, all_frames=all_frames)
    assert dataset.all_frames and dataset.videos() == ["vid1"]
    record = dataset.video("vid1")
    assert len(record.frame_names) == 16 and record.frame_names[9:11] == ["00009", "00010"]
    assert record.frame_paths[3].parent.parent.parent.name == "valid_all_frames"
    assert record.annotated_frames == ["00000", "00005"]
    assert record.first_frame_of_object == {1: "00000", 2: "00005"}


def test_split_folder_as_root_and_split_file(ytvos: Path, tmp_path: Path) -> None:
    assert YouTubeVOS(ytvos / "valid").videos() == ["vid1", "vid2"]
    names = tmp_path / "names.txt"
    names.write_text("vid2\n")
    assert open_dataset("youtubevos", ytvos, names, folder="valid").videos() == ["vid2"]
    names.write_text("vid3\n")
    with pytest.raises(InputError, match=r"names\.txt: video 'vid3'"):
        YouTubeVOS(ytvos / "valid", names)


def test_errors(ytvos: Path) -> None:
    with pytest.raises(InputError, match="give a split"):
        YouTubeVOS(ytvos)
    with pytest.raises(InputError, match="test"):
        YouTubeVOS(ytvos, "test")
    with pytest.raises(InputError, match="nowhere"):
        YouTubeVOS(ytvos / "nowhere", "valid")
    (ytvos / "valid" / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match=r"meta\.json"):
        YouTubeVOS(ytvos, "valid").video("vid1")
