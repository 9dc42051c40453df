"""Training clips: determinism, shapes, augmentations, pasted objects, static pseudo-videos, real DAVIS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vosuite.datasets import open_dataset
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.training.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AffineConfig,
    Clip,
    ClipConfig,
    ClipDataset,
    CropConfig,
    JitterConfig,
    PasteConfig,
    colour_jitter,
    compose_affine,
    cut_object,
    horizontal_flip,
    loader_options,
    object_path,
    paste_objects,
    random_affine,
    random_scale_crop,
    relabel_by_reference,
    sample_frame_indices,
    static_pseudo_video,
)
from vosuite.training.data.clips import reflect_index

SMALL = ClipConfig(
    num_frames=3,
    size=(32, 32),
    max_gap=3,
    min_object_pixels=10,
    paste=PasteConfig(prob=0.5),
    samples_per_epoch=6,
    seed=7,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two generated 10-frame videos at 48x64: 'a' with one object, 'b' with two."""
    root = tmp_path_factory.mktemp("clips")
    write_clip(root, SyntheticClipConfig(name="a", num_frames=10, height=48, width=64, num_objects=1, seed=1))
    write_clip(root, SyntheticClipConfig(name="b", num_frames=10, height=48, width=64, num_objects=2, seed=2))
    return root


@pytest.fixture(scope="module")
def tiny(tiny_root: Path) -> ClipDataset:
    return ClipDataset(open_dataset("generic", tiny_root), SMALL)


def _solid_clip(num_frames: int = 4, size: tuple[int, int] = (24, 32)) -> Clip:
    """A clip whose red channel is 255 exactly where the label is 1 (an off-centre rectangle)."""
    labels = np.zeros((num_frames, *size), np.uint8)
    labels[:, 6:14, 4:12] = 1
    frames = np.zeros((num_frames, *size, 3), np.float32)
    frames[..., 0] = labels * 255.0
    frames[..., 1] = np.linspace(0, 200, size[1], dtype=np.float32)  # a left-right ramp
    return Clip(frames, labels)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def _assert_same_sample(first: dict, second: dict) -> None:
    assert torch.equal(first["frames"], second["frames"])
    assert torch.equal(first["labels"], second["labels"])
    assert torch.equal(torch.as_tensor(first["obj_num"]), torch.as_tensor(second["obj_num"]))
    assert first["video"] == second["video"]


def test_same_seed_and_index_give_the_same_clip(tiny_root: Path, tiny: ClipDataset) -> None:
    again = ClipDataset(open_dataset("generic", tiny_root), SMALL)
    for index in range(len(tiny)):
        _assert_same_sample(tiny[index], again[index])


def test_other_index_epoch_or_seed_give_another_clip(tiny_root: Path, tiny: ClipDataset) -> None:
    assert not torch.equal(tiny[0]["frames"], tiny[2]["frames"])  # same video 'a', another draw
    other_seed = ClipDataset(open_dataset("generic", tiny_root), replace(SMALL, seed=8))
    assert not torch.equal(tiny[0]["frames"], other_seed[0]["frames"])
    epoch = ClipDataset(open_dataset("generic", tiny_root), SMALL)
    epoch.set_epoch(1)
    assert not torch.equal(tiny[0]["frames"], epoch[0]["frames"])


def test_dataloader_workers_reproduce_single_process_batches(tiny: ClipDataset) -> None:
    def batches(workers: int) -> list[dict]:
        loader = torch.utils.data.DataLoader(tiny, batch_size=2, **loader_options(workers))
        return list(loader)

    single, parallel = batches(0), batches(2)
    assert len(single) == len(parallel) == 3
    for first, second in zip(single, parallel, strict=True):
        _assert_same_sample(first, second)


# ---------------------------------------------------------------------------------------------
# Shapes, ids, sampling
# ---------------------------------------------------------------------------------------------


def test_sample_shapes_dtypes_ranges_and_ids(tiny: ClipDataset) -> None:
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    for index in range(len(tiny)):
        sample = tiny[index]
        frames, labels, obj_num = sample["frames"], sample["labels"], sample["obj_num"]
        assert frames.shape == (3, 3, 32, 32) and frames.dtype == torch.float32
        assert labels.shape == (3, 1, 32, 32) and labels.dtype == torch.int64
        pixels = frames * std + mean
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        assert 1 <= obj_num <= SMALL.max_objects
        assert labels.min() >= 0 and labels.max() <= obj_num
        reference_ids = set(labels[0].unique().tolist())
        assert reference_ids == set(range(obj_num + 1)), "every object is in the reference frame"


def test_frame_indices_step_by_at_most_max_gap() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        indices = sample_frame_indices(rng, length=100, num_frames=6, max_gap=4, reverse_prob=0.5)
        steps = np.abs(np.diff(indices))
        assert len(indices) == 6 and ((steps >= 1) & (steps <= 4)).all()
        assert all(0 <= i < 100 for i in indices)
    short = sample_frame_indices(np.random.default_rng(1), length=3, num_frames=8, max_gap=5)
    assert all(0 <= i < 3 for i in short)


def test_reflect_index_folds_at_both_ends() -> None:
    assert [reflect_index(p, 4) for p in range(-2, 9)] == [2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert reflect_index(5, 1) == 0


def test_relabel_keeps_reference_objects_in_order() -> None:
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[0, :3, :3], labels[0, 5:, 5:], labels[0, 0, 9] = 7, 3, 5  # id 5: one pixel, too small
    labels[1, :3, :3], labels[1, 5:, 5:], labels[1, 4, :] = 3, 255, 9  # 9 absent from the reference
    out, obj_num = relabel_by_reference(labels, min_pixels=2, max_objects=10, rng=np.random.default_rng(0))
    assert obj_num == 2
    assert (out[0, :3, :3] == 2).all() and (out[0, 5:, 5:] == 1).all() and out[0, 0, 9] == 0
    assert (out[1, :3, :3] == 1).all() and (out[1, 5:, 5:] == 0).all() and (out[1, 4] == 0).all()
    _, capped = relabel_by_reference(labels, min_pixels=0, max_objects=1, rng=np.random.default_rng(0))
    assert capped == 1


# ---------------------------------------------------------------------------------------------
# Augmentations
# ---------------------------------------------------------------------------------------------


def test_object_aware_crop_keeps_the_reference_object() -> None:
    labels = np.zeros((1, 120, 160), np.uint8)
    labels[0, 100:115, 5:20] = 1  # a small object in a corner
    clip = Clip(np.full((1, 120, 160, 3), 90.0, np.float32), labels)
    aware, blind = CropConfig(scale_range=(1, 1), max_tries=30, min_object_pixels=20), CropConfig((1, 1), max_tries=1)
    kept_aware = [random_scale_crop(clip, np.random.default_rng(s), (40, 40), aware).labels.any() for s in range(20)]
    kept_blind = [random_scale_crop(clip, np.random.default_rng(s), (40, 40), blind).labels.any() for s in range(20)]
    assert all(kept_aware)
    assert not all(kept_blind)


def test_scale_crop_pads_a_small_image_and_keeps_labels_with_pixels() -> None:
    clip = _solid_clip()
    out = random_scale_crop(clip, np.random.default_rng(3), (64, 64), CropConfig((0.5, 0.5), short_edge=24))
    assert out.frames.shape == (4, 64, 64, 3) and out.labels.shape == (4, 64, 64)
    assert set(np.unique(out.labels)) <= {0, 1} and out.labels.any()
    assert (out.frames[out.labels == 1][:, 0] > 127).all(), "object pixels stay red (nearest labels)"


def test_flip_mirrors_frames_and_labels_together() -> None:
    clip = _solid_clip()
    out = horizontal_flip(clip, np.random.default_rng(0), prob=1.0)
    np.testing.assert_array_equal(out.frames, clip.frames[:, :, ::-1])
    np.testing.assert_array_equal(out.labels, clip.labels[:, :, ::-1])
    np.testing.assert_array_equal(out.frames[..., 0] > 127, out.labels == 1)


def _flipped(out: Clip, clip: Clip) -> list[bool]:
    return [not np.array_equal(o, c) for o, c in zip(out.labels, clip.labels, strict=True)]


def test_flip_per_clip_is_all_or_nothing_and_per_frame_mixes() -> None:
    clip = _solid_clip(num_frames=8)
    per_clip = [_flipped(horizontal_flip(clip, np.random.default_rng(s), 0.5), clip) for s in range(10)]
    assert all(len(set(flags)) == 1 for flags in per_clip) and {f[0] for f in per_clip} == {True, False}
    per_frame = [
        _flipped(horizontal_flip(clip, np.random.default_rng(s), 0.5, per_frame=True), clip) for s in range(10)
    ]
    assert any(len(set(flags)) == 2 for flags in per_frame)


def _frames_all_equal(clip: Clip) -> bool:
    return all(np.array_equal(clip.frames[0], frame) for frame in clip.frames[1:])


def test_jitter_and_affine_per_clip_vs_per_frame() -> None:
    clip = _solid_clip()
    clip.frames[..., 2] = 60.0  # some colour for saturation and hue to act on
    jitter = JitterConfig(prob=1.0)
    assert _frames_all_equal(colour_jitter(clip, np.random.default_rng(0), jitter, per_frame=False))
    jittered = colour_jitter(clip, np.random.default_rng(0), jitter, per_frame=True)
    assert not _frames_all_equal(jittered)
    np.testing.assert_array_equal(jittered.labels, clip.labels)
    assert jittered.frames.min() >= 0 and jittered.frames.max() <= 255
    affine = AffineConfig(degrees=10, translate=0.1)
    assert _frames_all_equal(random_affine(clip, np.random.default_rng(0), affine, per_frame=False))
    moved = random_affine(clip, np.random.default_rng(0), affine, per_frame=True)
    assert not _frames_all_equal(moved) and set(np.unique(moved.labels)) <= {0, 1}


# ---------------------------------------------------------------------------------------------
# Pasted objects
# ---------------------------------------------------------------------------------------------


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def _donor() -> tuple[np.ndarray, np.ndarray]:
    """A 20x20 frame with a 7x9 blue object (id 1)."""
    rgb = np.zeros((20, 20, 3), np.float32)
    labels = np.zeros((20, 20), np.uint8)
    labels[5:12, 4:13] = 1
    rgb[labels == 1] = (0.0, 0.0, 250.0)
    return rgb, labels


def test_pasted_objects_move_along_their_own_path() -> None:
    clip = _solid_clip(num_frames=5, size=(64, 80))
    cutout = cut_object(*_donor(), object_id=1)
    assert cutout is not None and cutout.mask.shape == (7, 9)
    config = PasteConfig(size_range=(0.3, 0.3), max_shift=0.4)
    path = object_path(np.random.default_rng(4), cutout, clip.size, clip.num_frames, config)
    out = paste_objects(clip, [cutout], [path], first_id=2)
    expected = [path[i] @ np.array([*cutout.centre, 1.0]) for i in range(5)]
    for index in range(5):
        assert (out.labels[index] == 2).sum() > 20
        np.testing.assert_allclose(_centroid(out.labels[index] == 2), expected[index], atol=1.0)
    assert np.linalg.norm(expected[-1] - expected[0]) > 5, "the pasted object moves"
    untouched = out.labels != 2
    np.testing.assert_array_equal(out.labels[untouched], clip.labels[untouched])


def test_pasted_object_occludes_what_is_under_it() -> None:
    clip = _solid_clip(num_frames=2)  # id 1 at rows 6:14, cols 4:12
    cutout = cut_object(*_donor(), object_id=1)
    assert cutout is not None
    over_object = np.stack([compose_affine(cutout.centre, (8.0, 10.0))] * 2)  # centred on the rectangle
    nearby = np.stack([compose_affine(cutout.centre, (12.0, 10.0))] * 2)
    out = paste_objects(clip, [cutout, cutout], [over_object, nearby], first_id=2)
    assert (out.labels[:, 7:13, 9:15] == 3).all(), "the later paste is on top"
    assert (out.labels[:, 7:13, 5:7] == 2).all()
    assert np.isin(out.labels, [0, 1, 2, 3]).all() and (out.labels == 1).sum() < (clip.labels == 1).sum()
    np.testing.assert_allclose(out.frames[out.labels >= 2], np.tile([0.0, 0.0, 250.0], ((out.labels >= 2).sum(), 1)))


def test_dataset_paste_gives_multi_object_clips_from_single_object_videos(tiny_root: Path) -> None:
    config = replace(SMALL, paste=PasteConfig(prob=1.0, max_objects=2))
    single = [r for r in open_dataset("generic", tiny_root) if r.name == "a"] * 2  # 'a' has one object
    dataset = ClipDataset(single, config)
    obj_nums = [dataset[i]["obj_num"] for i in range(len(dataset))]
    assert max(obj_nums) >= 2 and all(n <= 3 for n in obj_nums)


# ---------------------------------------------------------------------------------------------
# Static pseudo-videos
# ---------------------------------------------------------------------------------------------


def test_static_pseudo_video_areas_follow_the_affine_determinant() -> None:
    labels = np.zeros((1, 96, 96), np.uint8)
    labels[0, 38:58, 36:60] = 1
    image = Clip(np.repeat(labels[..., None], 3, axis=-1).astype(np.float32) * 200, labels)
    config = AffineConfig(degrees=30, translate=0.05, scale=(0.7, 1.3), shear=10, per_frame=True)
    clip, matrices = static_pseudo_video(image, 6, np.random.default_rng(5), config)
    assert clip.frames.shape == (6, 96, 96, 3) and matrices.shape == (6, 2, 3)
    area = labels.sum()
    for index in range(6):
        determinant = abs(np.linalg.det(matrices[index, :, :2]))
        assert (clip.labels[index] == 1).sum() / area == pytest.approx(determinant, rel=0.08)
    assert not _frames_all_equal(clip)
    assert len({round(abs(np.linalg.det(m[:, :2])), 3) for m in matrices}) > 1


def test_static_samples_from_the_dataset(tiny_root: Path) -> None:
    config = replace(SMALL, static_prob=1.0, paste=None)
    sample = ClipDataset(open_dataset("generic", tiny_root), config)[0]
    assert sample["obj_num"] >= 1 and sample["frames"].shape == (3, 3, 32, 32)


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


def test_clip_from_davis2016_train_240p(shared_root: Path) -> None:
    root = shared_root / "data" / "davis2016"
    if not (root / "JPEGImages" / "240p").is_dir():
        pytest.skip(f"{root}/JPEGImages/240p not found")
    source = open_dataset("davis2016", root, "train", resolution="240p")
    dataset = ClipDataset(source, ClipConfig(size=(240, 240), paste=PasteConfig(prob=1.0), seed=1))
    assert len(dataset) == 30
    sample = dataset[3]
    assert sample["video"] == source.videos()[3]
    assert sample["frames"].shape == (5, 3, 240, 240) and sample["labels"].shape == (5, 1, 240, 240)
    assert 1 <= sample["obj_num"] <= 3
    assert set(sample["labels"][0].unique().tolist()) == set(range(sample["obj_num"] + 1))
