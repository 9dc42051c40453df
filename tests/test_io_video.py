"""Writing videos (vosuite.io.video_writer) and reading them back (vosuite.io.frames)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vosuite.errors import InputError
from vosuite.io.frames import open_frames
from vosuite.io.video_writer import VideoWriter, pad_to_even, pick_video_codec


def moving_square(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """[H, W, 3] uint8: a grey background with a red square that moves 3 px right per frame."""
    rgb = np.full((height, width, 3), 60, np.uint8)
    rgb[12:28, 4 + 3 * index : 20 + 3 * index] = (220, 30, 30)
    return rgb


def write_squares(path: Path, count: int = 12, fps: float = 25.0, **kwargs: object) -> list[np.ndarray]:
    """Encode ``count`` moving-square frames to ``path``; returns what was written."""
    frames = [moving_square(index) for index in range(count)]
    with VideoWriter(path, fps=fps, **kwargs) as writer:  # type: ignore[arg-type]
        for rgb in frames:
            writer.write(rgb)
    return frames


def leftovers(folder: Path) -> list[str]:
    """Names of everything in ``folder`` (temporary files included)."""
    return sorted(path.name for path in folder.iterdir())


def test_h264_round_trip(tmp_path: Path) -> None:
    video = tmp_path / "squares.mp4"
    written = write_squares(video)

    source = open_frames(video)
    decoded = list(source)

    assert leftovers(tmp_path) == ["squares.mp4"]
    assert source.num_frames == len(source) == 12
    assert source.size == (48, 64)
    assert source.fps == pytest.approx(25.0)
    assert source.names is None
    assert [frame.name for frame in decoded] == [f"{index:05d}" for index in range(12)]
    for frame, expected in zip(decoded, written, strict=True):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (48, 64, 3)
        assert np.abs(frame.rgb.astype(np.int16) - expected).mean() < 10
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.name == (
            "h264" if pick_video_codec() == "libx264" else "mpeg4"
        )


def test_mpeg4_fallback_and_fractional_fps(tmp_path: Path) -> None:
    video = tmp_path / "squares.mkv"
    written = write_squares(video, count=6, fps=30000 / 1001, codec="mpeg4")
    source = open_frames(video)
    decoded = list(source)
    assert len(decoded) == 6
    assert source.fps == pytest.approx(29.97, abs=0.01)
    assert np.abs(decoded[3].rgb.astype(np.int16) - written[3]).mean() < 10


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    video = tmp_path / "odd.mp4"
    odd = np.full((33, 47, 3), 128, np.uint8)
    with VideoWriter(video, fps=10) as writer:
        writer.write(odd)
        writer.write(odd)
    frames = list(open_frames(video))
    assert len(frames) == 2 and frames[0].rgb.shape == (34, 48, 3)
    assert np.abs(frames[0].rgb.astype(np.int16) - 128).mean() < 4
    assert pad_to_even(np.zeros((4, 6, 3), np.uint8)).shape == (4, 6, 3)


def test_short_side_resize_of_a_video(tmp_path: Path) -> None:
    video = tmp_path / "squares.mp4"
    write_squares(video, count=3)
    source = open_frames(video, short_side=24)
    assert source.size == (48, 64) and source.output_size == (24, 32)
    assert [frame.rgb.shape for frame in source] == [(24, 32, 3)] * 3


def test_exception_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    with pytest.raises(KeyError), VideoWriter(video, fps=10) as writer:
        writer.write(moving_square(0))
        raise KeyError("simulated failure while producing frames")
    assert leftovers(tmp_path) == []


def test_exception_keeps_an_existing_file_untouched(tmp_path: Path) -> None:
    video = tmp_path / "keep.mp4"
    video.write_bytes(b"previous result")
    with pytest.raises(RuntimeError), VideoWriter(video, fps=10) as writer:
        writer.write(moving_square(0))
        raise RuntimeError("fail")
    assert video.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == ["keep.mp4"]


def test_no_frames_saves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"), VideoWriter(tmp_path / "empty.mp4", fps=10):
        pass
    assert leftovers(tmp_path) == []


def test_frame_size_change_is_rejected_and_cleaned_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first frame"), VideoWriter(tmp_path / "v.mp4", fps=10) as writer:
        writer.write(moving_square(0))
        writer.write(np.zeros((10, 10, 3), np.uint8))
    assert leftovers(tmp_path) == []


def test_bad_writer_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="out.webm"):
        VideoWriter(tmp_path / "out.webm")
    with pytest.raises(InputError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    with pytest.raises(RuntimeError, match="context manager"):
        VideoWriter(tmp_path / "out.mp4").write(moving_square(0))
    with pytest.raises(ValueError, match="uint8"), VideoWriter(tmp_path / "out.mp4") as writer:
        writer.write(np.zeros((8, 8, 3), np.float32))
    assert leftovers(tmp_path) == []
