"""Drawing masks over frames and writing overlays (vosuite.io.overlay)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vosuite.errors import InputError
from vosuite.io.frames import open_frames
from vosuite.io.masks import davis_palette
from vosuite.io.overlay import VOID_GREY, OverlayWriter, object_contours, overlay_masks

BACKGROUND = (40, 90, 160)


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A flat [24, 32, 3] frame and labels with object 1 (left square), object 2 (right) and a void strip."""
    rgb = np.empty((24, 32, 3), np.uint8)
    rgb[:] = BACKGROUND
    labels = np.zeros((24, 32), np.uint8)
    labels[4:16, 2:14] = 1
    labels[4:16, 18:30] = 2
    labels[20:22, :] = 255
    return rgb, labels


def test_object_pixels_move_towards_their_palette_colour() -> None:
    rgb, labels = scene()
    result = overlay_masks(rgb, labels, alpha=0.5)
    palette = davis_palette().astype(int)

    inside_1 = result[10, 8].astype(int)  # centre of object 1, far from its contour
    expected_1 = (np.array(BACKGROUND) + palette[1]) / 2
    assert np.abs(inside_1 - expected_1).max() <= 1
    assert np.abs(inside_1 - palette[1]).sum() < np.abs(np.array(BACKGROUND) - palette[1]).sum()
    assert np.abs(result[10, 24].astype(int) - (np.array(BACKGROUND) + palette[2]) / 2).max() <= 1


def test_background_and_void_are_untouched_by_default() -> None:
    rgb, labels = scene()
    result = overlay_masks(rgb, labels)
    untouched = (labels == 0) | (labels == 255)
    np.testing.assert_array_equal(result[untouched], rgb[untouched])
    np.testing.assert_array_equal(rgb, scene()[0])  # the input is not modified


def test_void_can_be_drawn_grey() -> None:
    rgb, labels = scene()
    result = overlay_masks(rgb, labels, alpha=1.0, draw_void=True)
    assert tuple(result[21, 5]) == VOID_GREY


def test_contour_has_the_full_colour_and_can_be_switched_off() -> None:
    rgb, labels = scene()
    palette = davis_palette()
    with_contour = overlay_masks(rgb, labels, alpha=0.3)
    assert tuple(with_contour[4, 8]) == tuple(palette[1])  # top edge of object 1
    assert tuple(with_contour[5, 8]) == tuple(palette[1])  # 2 px thick
    assert tuple(with_contour[6, 8]) != tuple(palette[1])  # the fill inside is translucent
    without_contour = overlay_masks(rgb, labels, alpha=0.3, contour=False)
    assert tuple(without_contour[4, 8]) == tuple(without_contour[10, 8])


def test_alpha_zero_without_contour_is_the_identity() -> None:
    rgb, labels = scene()
    np.testing.assert_array_equal(overlay_masks(rgb, labels, alpha=0.0, contour=False), rgb)


def test_contours_follow_label_changes_only_inside_objects() -> None:
    labels = np.zeros((10, 10), np.int64)
    labels[2:8, 2:8] = 3
    edge = object_contours(labels, width=1)
    assert edge[2, 2:8].all() and edge[2:8, 2].all()
    assert not edge[3:7, 3:7].any()
    assert not edge[labels == 0].any()


def test_large_and_wide_ids_are_accepted() -> None:
    rgb, _ = scene()
    labels = np.zeros((24, 32), np.int64)
    labels[5:10, 5:10] = 300
    result = overlay_masks(rgb, labels)
    assert not np.array_equal(result[7, 7], rgb[7, 7])


def test_bad_overlay_inputs() -> None:
    rgb, labels = scene()
    with pytest.raises(ValueError, match="shape"):
        overlay_masks(rgb, labels[:10])
    with pytest.raises(ValueError, match="alpha"):
        overlay_masks(rgb, labels, alpha=1.5)
    with pytest.raises(ValueError, match="uint8"):
        overlay_masks(rgb.astype(np.float32), labels)


def test_overlay_writer_folder_writes_one_png_per_frame(tmp_path: Path) -> None:
    rgb, labels = scene()
    out = tmp_path / "overlays"
    with OverlayWriter(out, alpha=0.5) as writer:
        writer.write(rgb, labels)
        writer.write(rgb, labels, name="frame_000007")
    assert sorted(path.name for path in out.iterdir()) == ["00000.png", "frame_000007.png"]
    saved = np.asarray(Image.open(out / "00000.png").convert("RGB"))
    np.testing.assert_array_equal(saved, overlay_masks(rgb, labels, alpha=0.5))


def test_overlay_writer_video(tmp_path: Path) -> None:
    rgb, labels = scene()
    video = tmp_path / "overlay.mp4"
    with OverlayWriter(video, fps=12) as writer:
        for _ in range(3):
            writer.write(rgb, labels)
    source = open_frames(video)
    frames = list(source)
    assert len(frames) == 3 and source.fps == pytest.approx(12.0)
    expected = overlay_masks(rgb, labels).astype(np.int16)
    assert np.abs(frames[0].rgb.astype(np.int16) - expected).mean() < 10


def test_overlay_writer_video_is_atomic(tmp_path: Path) -> None:
    rgb, labels = scene()
    with pytest.raises(RuntimeError), OverlayWriter(tmp_path / "overlay.mp4") as writer:
        writer.write(rgb, labels)
        raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []


def test_overlay_writer_refuses_a_file_as_folder(tmp_path: Path) -> None:
    existing = tmp_path / "result.txt"
    existing.write_text("x")
    with pytest.raises(InputError, match="result.txt"):
        OverlayWriter(existing)
