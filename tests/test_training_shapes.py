"""Generated shapes as a training source (vosuite.training.data.shapes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vosuite.datasets import open_dataset
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.training.config import DataSection
from vosuite.training.data import Clip, ClipConfig, ClipDataset, PasteConfig
from vosuite.training.data.shapes import (
    ShapesConfig,
    add_shapes,
    generated_background,
    shape_cutout,
    shape_mask,
)

SMALL = ClipConfig(num_frames=3, size=(48, 48), max_gap=3, min_object_pixels=10, paste=None, samples_per_epoch=8,
                   seed=3)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    write_clip(folder, SyntheticClipConfig(name="a", num_frames=8, height=48, width=64, num_objects=1, seed=1))
    return folder


def test_every_kind_of_shape_fills_a_good_part_of_its_square_and_touches_it() -> None:
    rng = np.random.default_rng(0)
    fractions = []
    for _ in range(60):
        mask = shape_mask(rng, 64)
        assert mask.dtype == bool and mask.shape == (64, 64)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) >= 0.4 * 64 - 2  # no degenerate sliver
        fractions.append(mask.mean())
    assert min(fractions) > 0.01 and max(fractions) <= 1.0


def test_a_cutout_is_cropped_to_its_shape_and_filled_inside_the_colour_range() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        cutout = shape_cutout(rng, 40, patches=None)
        assert cutout.mask.any(axis=0).all() and cutout.mask.any(axis=1).all()
        assert cutout.rgb.shape == (*cutout.mask.shape, 3) and cutout.rgb.dtype == np.float32
        assert cutout.rgb.min() >= 0 and cutout.rgb.max() <= 255


def test_real_patches_fill_shapes_when_given() -> None:
    patch_value = 77.0
    used = []

    def patches(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        used.append(size)
        return np.full((*size, 3), patch_value, np.float32)

    rng = np.random.default_rng(2)
    cutouts = [shape_cutout(rng, 32, patches) for _ in range(30)]
    filled = [c for c in cutouts if (c.rgb == patch_value).all()]
    assert used and len(filled) == len(used)  # every patch asked for fills its shape
    assert all(c.rgb.shape[:2] == size for c, size in zip(filled, used, strict=True))


def test_generated_background_is_still_up_to_its_noise() -> None:
    frames = generated_background(np.random.default_rng(3), 4, (30, 40))
    assert frames.shape == (4, 30, 40, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 255
    assert np.abs(frames[0] - frames[1]).mean() < 20  # per-frame noise only (uniform 0..12 sigma)


def _clip(num_frames: int = 3) -> Clip:
    labels = np.zeros((num_frames, 48, 64), np.uint8)
    labels[:, 10:20, 10:20] = 1
    return Clip(np.full((num_frames, 48, 64, 3), 100.0, np.float32), labels)


def test_shapes_get_ids_after_the_clip_objects_and_distractors_stay_background() -> None:
    config = ShapesConfig(prob=1.0, max_objects=3, max_distractors=2, plain_background_prob=0.0, side=24)
    seen_distractor = False
    for seed in range(20):
        clip, top = add_shapes(_clip(), np.random.default_rng(seed), config, obj_num=1, max_objects=10)
        ids = set(np.unique(clip.labels).tolist())
        assert ids <= set(range(top + 1)) and 2 <= top <= 4
        # a pixel that changed but is labelled background belongs to a distractor
        changed = np.abs(clip.frames - 100.0).max(axis=-1) > 30
        seen_distractor |= bool((changed & (clip.labels == 0)).any())
    assert seen_distractor


def test_a_plain_background_drops_the_clip_objects_and_max_objects_is_kept() -> None:
    config = ShapesConfig(prob=1.0, max_objects=3, max_distractors=0, plain_background_prob=1.0, side=24)
    clip, top = add_shapes(_clip(), np.random.default_rng(5), config, obj_num=1, max_objects=2)
    assert 1 <= top <= 2 and clip.labels.max() <= top
    assert not (clip.frames == 100.0).all(axis=-1).any(), "the video is replaced"


def test_dataset_with_shapes_gives_multi_object_clips_and_is_reproducible(root: Path) -> None:
    records = list(open_dataset("generic", root))
    dataset = ClipDataset(records, replace(SMALL, shapes=ShapesConfig(prob=1.0, side=24)))
    obj_nums = [dataset[i]["obj_num"] for i in range(len(dataset))]
    assert max(obj_nums) >= 2
    first, again = dataset[3], dataset[3]
    assert (first["frames"] == again["frames"]).all() and (first["labels"] == again["labels"]).all()


def test_shapes_off_leaves_the_random_stream_unchanged(root: Path) -> None:
    records = list(open_dataset("generic", root))
    plain = ClipDataset(records, SMALL)[2]
    off = ClipDataset(records, replace(SMALL, shapes=ShapesConfig(prob=0.0)))[2]
    assert (plain["frames"] == off["frames"]).all()


def test_data_section_validates_the_new_probabilities() -> None:
    assert DataSection(shapes_prob=0.5, paste_prob=0.0).shapes_prob == 0.5
    with pytest.raises(InputError, match="shapes_prob"):
        DataSection(shapes_prob=1.5)
    with pytest.raises(InputError, match="paste_prob"):
        DataSection(paste_prob=-0.1)


def test_recipe_fields_reach_the_clip_config(root: Path) -> None:
    from types import SimpleNamespace

    from vosuite.training.data.clips import labelled_clips

    def built(**fields: object) -> ClipConfig:
        data = DataSection(dataset="generic", root=str(root), split=None, **fields)
        return labelled_clips(SimpleNamespace(data=data, train=SimpleNamespace(seed=0)), max_objects=4).config

    config = built(shapes_prob=0.25, paste_prob=0.6, shapes_twin_prob=0.5)
    assert config.shapes.prob == 0.25 and config.shapes.twin_prob == 0.5
    assert config.paste is not None and config.paste.prob == 0.6
    assert built().paste.prob == PasteConfig().prob and built().shapes.prob == 0.0
    plain = built(shapes_prob=0.25, augment=False)
    assert plain.paste is None and plain.shapes.prob == 0.0


def test_a_look_alike_keeps_the_shape_and_scales_each_colour_by_at_most_15_percent() -> None:
    from vosuite.training.data.shapes import look_alike

    original = shape_cutout(np.random.default_rng(7), 32, patches=None)
    twin = look_alike(np.random.default_rng(8), original)
    assert np.array_equal(twin.mask, original.mask) and twin.rgb is not original.rgb
    bright = original.rgb > 20
    ratio = twin.rgb[bright] / original.rgb[bright]
    assert ratio.min() >= 0.85 - 1e-6 and (ratio.max() <= 1.15 + 1e-6 or twin.rgb.max() == 255)


def test_twin_distractors_copy_the_clip_objects_and_stay_background() -> None:
    from vosuite.training.data.shapes import own_cutouts

    clip = _clip()
    clip.frames[:, 10:20, 10:20] = (250.0, 10.0, 10.0)  # object 1 is a red square
    assert [c.mask.shape for c in own_cutouts(clip, 1)] == [(10, 10)]
    config = ShapesConfig(prob=1.0, max_objects=1, max_distractors=2, plain_background_prob=0.0, twin_prob=1.0,
                          side=24)
    reds = 0
    for seed in range(10):
        out, _ = add_shapes(clip, np.random.default_rng(seed), config, obj_num=1, max_objects=2)
        red = (out.frames[..., 0] > 200) & (out.frames[..., 1] < 40)
        reds += int((red & (out.labels == 0)).sum())  # a red look-alike labelled background
    assert reds > 0
