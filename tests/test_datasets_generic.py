"""Generic video folders and single videos (file or frames folder) with a first-frame mask."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vosuite.datasets import GenericFolder, open_dataset, single_video
from vosuite.errors import InputError
from vosuite.io.masks import write_mask

SHAPE = (16, 24)


def _frames(folder: Path, names: list[str], suffix: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", SHAPE[::-1], (10, 20, 30)).save(folder / f"{name}{suffix}")


def _mask(path: Path, object_id: int = 1) -> Path:
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:9, 4:12] = object_id
    write_mask(path, labels)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "generic"
    _frames(root / "JPEGImages" / "clip10", ["f1", "f2", "f10"], ".png")
    _frames(root / "JPEGImages" / "clip2", ["a"])
    _mask(root / "Annotations" / "clip10" / "f2.png", 3)
    _mask(root / "Annotations" / "clip10" / "f10.png", 3)
    return root


def test_generic_folder_natural_order_and_subset(folder: Path) -> None:
    dataset = open_dataset("generic", folder)
    assert isinstance(dataset, GenericFolder) and dataset.videos() == ["clip2", "clip10"]
    record = dataset.video("clip10")
    assert record.frame_names == ["f1", "f2", "f10"]
    assert record.annotated_frames == ["f2", "f10"]
    assert record.object_first_frames() == {3: "f2"}
    assert dataset.video("clip2").annotated_frames == []


def test_generic_split_and_orphan_mask(folder: Path) -> None:
    (folder / "ImageSets").mkdir()
    (folder / "ImageSets" / "val.txt").write_text("clip10\n")
    assert GenericFolder(folder, "val").videos() == ["clip10"]
    _mask(folder / "Annotations" / "clip2" / "zzz.png")
    with pytest.raises(InputError, match="mask has no frame 'zzz'"):
        GenericFolder(folder).video("clip2")


def test_single_video_frames_folder(folder: Path) -> None:
    mask = folder / "Annotations" / "clip10" / "f2.png"
    record = single_video(folder / "JPEGImages" / "clip10", mask)
    assert record.name == "clip10" and record.frame_names == ["f1", "f2", "f10"]
    assert record.annotation_paths == {"f1": mask} and record.video_file is None


def test_single_video_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for _ in range(7):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    mask = _mask(tmp_path / "first.png")
    record = single_video(video, mask)
    assert record.video_file == video and record.frame_paths == []
    assert record.frame_names == [f"{i:05d}" for i in range(7)]
    assert record.annotated_frames == ["00000"] and record.labels("00000").max() == 1


def test_single_video_errors(tmp_path: Path) -> None:
    mask = _mask(tmp_path / "m.png")
    with pytest.raises(InputError, match="video not found"):
        single_video(tmp_path / "none.mp4", mask)
    with pytest.raises(InputError, match="first-frame mask not found"):
        single_video(tmp_path, tmp_path / "none.png")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="junk.mp4"):
        single_video(tmp_path / "junk.mp4", mask)
    with pytest.raises(InputError, match="frames folder"):
        GenericFolder(tmp_path)
