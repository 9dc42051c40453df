"""The multi-object check set (vosuite.datasets.composites): every object visible in the first
frame, a 1-object clip equal to its base video, the same set
every time."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vosuite.datasets import open_dataset
from vosuite.datasets.composites import MIN_FIRST_FRAME_PIXELS, CompositeConfig, clip_name, write_composites
from vosuite.io.masks import read_mask, write_mask

SIZE = (60, 80)
CONFIG = CompositeConfig(counts=(1, 3), clips_per_count=2, frames=4, height=48, width=64, seed=3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Three DAVIS-2016 style videos (0/255 masks), a moving square each on its own colour."""
    root = tmp_path_factory.mktemp("davis")
    rng = np.random.default_rng(0)
    for v, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200))):
        for t in range(5):
            rgb = rng.integers(0, 60, (*SIZE, 3), dtype=np.uint8)
            mask = np.zeros(SIZE, np.uint8)
            top, left = 10 + 2 * t, 15 + 4 * v
            rgb[top:top + 25, left:left + 30] = colour
            mask[top:top + 25, left:left + 30] = 255
            frames = root / "JPEGImages" / "480p" / f"v{v}"
            frames.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(frames / f"{t:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            write_mask(root / "Annotations" / "480p" / f"v{v}" / f"{t:05d}.png", mask)
    return list(open_dataset("davis2016", root))


def test_every_object_is_in_the_first_frame_of_its_clip(videos: list, tmp_path: Path) -> None:
    names = write_composites(videos, tmp_path, CONFIG)
    assert names == [clip_name(c, i) for c in (1, 3) for i in range(2)]
    for name in names:
        count = int(name.removeprefix("objects").split("-")[0])
        masks = sorted((tmp_path / "Annotations" / name).glob("*.png"))
        assert len(masks) == CONFIG.frames == len(list((tmp_path / "JPEGImages" / name).glob("*.jpg")))
        first = read_mask(masks[0])
        assert first.shape == (CONFIG.height, CONFIG.width)
        assert all(int((first == k).sum()) >= MIN_FIRST_FRAME_PIXELS for k in range(1, count + 1))
        assert set(np.unique(np.stack([read_mask(m) for m in masks]))) <= set(range(count + 1))


def test_a_one_object_clip_is_its_base_video(videos: list, tmp_path: Path) -> None:
    write_composites(videos, tmp_path, CompositeConfig(counts=(1,), clips_per_count=1, frames=5, height=60,
                                                       width=80, seed=1))
    labels = [read_mask(p) for p in sorted((tmp_path / "Annotations" / clip_name(1, 0)).glob("*.png"))]
    bases = [v for v in videos if all(np.array_equal(read_mask(v.annotation_paths[f]) // 255, labels[t])
                                       for t, f in enumerate(v.frame_names))]
    assert len(bases) == 1


def test_the_set_is_the_same_every_time(videos: list, tmp_path: Path) -> None:
    write_composites(videos, tmp_path / "a", CONFIG)
    write_composites(videos, tmp_path / "b", CONFIG)
    for path in (tmp_path / "a").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
