"""Reading frames from image folders and video files (vosuite.io.frames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosuite.errors import InputError
from vosuite.io.frames import (
    Frame,
    is_video_file,
    natural_sort_key,
    open_frames,
    resize_short_side,
    resized_size,
)


def gradient_frame(height: int, width: int, shift: int = 0) -> np.ndarray:
    """A deterministic [H, W, 3] uint8 test image."""
    rows, cols = np.mgrid[0:height, 0:width]
    channels = [(rows * 7 + shift) % 256, (cols * 5) % 256, (rows + cols) % 256]
    return np.stack(channels, axis=2).astype(np.uint8)  # [H, W, 3]


def write_png_frames(folder: Path, names: list[str], height: int = 12, width: int = 16) -> list[np.ndarray]:
    """Write one PNG per name into ``folder``; returns the images in the order of ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for shift, name in enumerate(names):
        image = gradient_frame(height, width, shift)
        Image.fromarray(image).save(folder / f"{name}.png")
        images.append(image)
    return images


def test_natural_sort_key_orders_numbers_by_value() -> None:
    names = ["frame10.jpg", "frame2.jpg", "frame1.jpg", "Frame3.jpg", "frame02.jpg"]
    assert sorted(names, key=natural_sort_key) == [
        "frame1.jpg",
        "frame02.jpg",
        "frame2.jpg",
        "Frame3.jpg",
        "frame10.jpg",
    ]


def test_is_video_file() -> None:
    assert is_video_file("a/b.MP4") and is_video_file(Path("x.webm")) and is_video_file("c.mkv")
    assert not is_video_file("frame.jpg") and not is_video_file("folder")


def test_folder_is_read_in_natural_order_and_ignores_other_files(tmp_path: Path) -> None:
    images = write_png_frames(tmp_path, ["frame10", "frame2", "frame1"])
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()

    source = open_frames(tmp_path)
    frames = list(source)

    assert source.names == ["frame1", "frame2", "frame10"]
    assert len(source) == source.num_frames == 3
    assert source.size == (12, 16) and source.fps is None
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert [frame.name for frame in frames] == ["frame1", "frame2", "frame10"]
    for frame, expected in zip(frames, [images[2], images[1], images[0]], strict=True):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (12, 16, 3)
        np.testing.assert_array_equal(frame.rgb, expected)


def test_folder_source_can_be_iterated_twice(tmp_path: Path) -> None:
    write_png_frames(tmp_path, ["a", "b"])
    source = open_frames(str(tmp_path))
    assert [f.name for f in source] == [f.name for f in source] == ["a", "b"]


def test_grey_and_jpeg_frames_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 10), 77, np.uint8), mode="L").save(tmp_path / "0.png")
    Image.fromarray(gradient_frame(8, 10)).save(tmp_path / "1.jpg", quality=95)
    grey, colour = list(open_frames(tmp_path))
    assert grey.rgb.shape == colour.rgb.shape == (8, 10, 3)
    assert np.all(grey.rgb == 77)
    assert np.abs(colour.rgb.astype(int) - gradient_frame(8, 10)).mean() < 10


@pytest.mark.parametrize(
    ("size", "short_side", "expected"),
    [
        ((30, 50), 15, (15, 25)),
        ((30, 50), 60, (60, 100)),
        ((50, 30), 15, (25, 15)),
        ((33, 50), 16, (16, 24)),
        ((30, 50), None, (30, 50)),
    ],
)
def test_resized_size(size: tuple[int, int], short_side: int | None, expected: tuple[int, int]) -> None:
    assert resized_size(*size, short_side) == expected


def test_resize_short_side_keeps_content() -> None:
    flat = np.full((30, 50, 3), 200, np.uint8)
    assert resize_short_side(flat, 15).shape == (15, 25, 3)
    assert resize_short_side(flat, 60).shape == (60, 100, 3)
    assert np.all(resize_short_side(flat, 15) == 200) and np.all(resize_short_side(flat, 60) == 200)
    assert resize_short_side(flat, 30) is flat


def test_folder_frames_are_resized_on_request(tmp_path: Path) -> None:
    write_png_frames(tmp_path, ["0", "1"], height=20, width=40)
    source = open_frames(tmp_path, short_side=10)
    assert source.size == (20, 40) and source.output_size == (10, 20)
    assert all(frame.rgb.shape == (10, 20, 3) for frame in source)


@pytest.mark.parametrize("short_side", [0, -3, True, 2.5, "16"])
def test_bad_short_side_is_rejected(tmp_path: Path, short_side: object) -> None:
    write_png_frames(tmp_path, ["0"])
    with pytest.raises(InputError, match="short_side"):
        open_frames(tmp_path, short_side=short_side)  # type: ignore[arg-type]


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError, match="nowhere"):
        open_frames(missing)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(InputError, match="no frame images"):
        open_frames(tmp_path)


def test_unsupported_file_kind_is_an_error(tmp_path: Path) -> None:
    text_file = tmp_path / "frames.txt"
    text_file.write_text("x")
    with pytest.raises(InputError, match="frames.txt"):
        open_frames(text_file)


def test_corrupt_jpeg_is_named_when_reached(tmp_path: Path) -> None:
    write_png_frames(tmp_path, ["frame1"])
    (tmp_path / "frame2.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    frames = iter(open_frames(tmp_path))
    first = next(frames)  # streaming: the good frame comes out before the bad one is read
    assert first.name == "frame1"
    with pytest.raises(InputError, match="frame2.jpg") as caught:
        next(frames)
    assert "\n" not in str(caught.value)


def test_truncated_jpeg_is_an_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(gradient_frame(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    good.unlink()
    (tmp_path / "0.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="0.jpg"):
        list(open_frames(tmp_path))


def test_frames_of_different_sizes_are_an_error(tmp_path: Path) -> None:
    write_png_frames(tmp_path / "v", ["0"], height=12, width=16)
    write_png_frames(tmp_path / "v", ["1"], height=10, width=16)
    with pytest.raises(InputError, match="1.png"):
        list(open_frames(tmp_path / "v"))


def test_duplicate_frame_names_are_an_error(tmp_path: Path) -> None:
    write_png_frames(tmp_path, ["0"])
    Image.fromarray(gradient_frame(12, 16)).save(tmp_path / "0.jpg")
    with pytest.raises(InputError, match="share the name"):
        open_frames(tmp_path)


def test_garbage_video_file_is_named(tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 64 + b"not a video container")
    with pytest.raises(InputError, match="broken.mp4") as caught:
        list(open_frames(video))
    assert "\n" not in str(caught.value)


def test_frame_is_a_small_record() -> None:
    frame = Frame(index=3, name="00003", rgb=np.zeros((2, 2, 3), np.uint8))
    assert (frame.index, frame.name, frame.rgb.shape) == (3, "00003", (2, 2, 3))


def test_real_chair_video_and_frames_agree(shared_root: Path) -> None:
    chair = shared_root / "data" / "pumavos" / "chair"
    if not (chair / "chair.mp4").is_file() or not (chair / "JPEGImages").is_dir():
        pytest.skip(f"VOSUITE_DATA has no PUMaVOS chair video at {chair}")
    video = open_frames(chair / "chair.mp4")
    folder = open_frames(chair / "JPEGImages")

    assert video.size == folder.size == (480, 720)  # 720 wide, 480 high
    assert video.num_frames == folder.num_frames == 60
    assert video.fps == pytest.approx(30.0)
    assert folder.names is not None and folder.names[0] == "frame_000000"

    count = 0
    for from_video, from_folder in zip(video, folder, strict=True):
        assert from_video.rgb.shape == from_folder.rgb.shape == (480, 720, 3)
        assert from_video.name == f"{count:05d}"
        if count % 20 == 0:
            difference = np.abs(from_video.rgb.astype(np.int16) - from_folder.rgb.astype(np.int16))
            assert difference.mean() < 5
        count += 1
    assert count == 60

    small = open_frames(chair / "chair.mp4", short_side=240)
    assert small.output_size == (240, 360)
    assert next(iter(small)).rgb.shape == (240, 360, 3)


def test_bmp_frames_folder_opens_and_datasets_share_the_suffixes(tmp_path: Path) -> None:
    from vosuite.datasets import base, generic
    from vosuite.io import frames

    images = [gradient_frame(6, 8, shift) for shift in (0, 40)]
    for name, rgb in zip(["f2", "f10"], images, strict=True):
        Image.fromarray(rgb).save(tmp_path / f"{name}.bmp", format="BMP")
    source = open_frames(tmp_path)
    assert source.names == ["f2", "f10"]
    assert [frame.rgb.tolist() for frame in source] == [images[0].tolist(), images[1].tolist()]
    assert frames.IMAGE_SUFFIXES == (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
    assert base.IMAGE_SUFFIXES is frames.IMAGE_SUFFIXES
    assert generic.IMAGE_SUFFIXES is frames.IMAGE_SUFFIXES
