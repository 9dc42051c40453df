"""Training clips sampled from any vosuite dataset, as a map-style ``torch.utils.data.Dataset``.

One sample is N frames of one video taken with random gaps of 1..``max_gap`` annotated frames
(AOT DATA_RANDOM_GAP: 12 for DAVIS at 24 fps, 3 for YouTube-VOS at 6 fps), randomly reversed
(DATA_RANDOM_REVERSE_SEQ); the first frame is the reference, whose mask is given to the model, and
every frame's mask is a target. It is augmented (scale + object-aware crop, motion, flip, pasted
objects, colour jitter) and returned as::

    {"frames": [N, 3, H, W] float32 (ImageNet-normalised), "labels": [N, 1, H, W] int64,
     "obj_num": int, "video": str}

Labels hold 0 (background) and 1..obj_num: the objects of the reference frame, renumbered in order;
ids absent from the reference, void (255) and objects too small in the reference become 0.

Every random choice comes from a numpy Generator seeded by (seed, epoch, index), never the global
RNG, so a sample is the same whichever worker process or rank builds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.inference.preprocess import normalize_rgb
from vosuite.io.frames import read_image_rgb
from vosuite.training.data.augment import (
    VOID_ID,
    AffineConfig,
    Clip,
    CropConfig,
    ElasticConfig,
    JitterConfig,
    colour_jitter,
    elastic,
    horizontal_flip,
    object_pixel_counts,
    random_affine,
    random_scale_crop,
)
from vosuite.training.data.seeded import SeededDataset
from vosuite.training.data.shapes import ShapesConfig, add_shapes
from vosuite.training.data.static import STATIC_AFFINE, static_pseudo_video
from vosuite.training.data.synthetic import Cutout, PasteConfig, cut_object, object_path, paste_objects


@dataclass(frozen=True)
class ClipConfig:
    """How training clips are sampled and augmented (defaults: AOT ``configs/default.py`` where it has one).

    Attributes:
        num_frames: frames per clip, reference included (DATA_SEQ_LEN).
        size: (H, W) of the output crop (DATA_RANDOMCROP).
        max_gap: largest step between consecutive sampled annotated frames (DATA_RANDOM_GAP_DAVIS).
        reverse_prob: chance of sampling the video backwards (DATA_RANDOM_REVERSE_SEQ).
        crop: random scale + object-aware crop; ``crop_per_frame`` gives every frame its own.
        flip_prob: horizontal flip chance (DATA_RANDOMFLIP); ``flip_per_frame`` flips frames independently.
        jitter, motion, elastic, paste: the augmentations, None to switch one off.
        shapes: generated shapes pasted in (:mod:`~vosuite.training.data.shapes`; prob 0 = never).
        static_prob: chance that a sample is a static pseudo-video of one annotated frame.
        static_affine: the affine range of those pseudo-videos (AOT StaticTrain's).
        max_objects: at most this many objects per clip (MODEL_MAX_OBJ_NUM).
        min_object_pixels: objects with no more pixels than this in the reference are dropped (AOT 100).
        samples_per_epoch: dataset length; None = one per video.
        seed: base seed of every per-sample Generator.
    """

    num_frames: int = 5
    size: tuple[int, int] = (465, 465)
    max_gap: int = 12
    reverse_prob: float = 0.5
    crop: CropConfig = field(default_factory=CropConfig)
    crop_per_frame: bool = False
    flip_prob: float = 0.5
    flip_per_frame: bool = False
    jitter: JitterConfig | None = field(default_factory=JitterConfig)
    motion: AffineConfig | None = field(default_factory=AffineConfig)
    elastic: ElasticConfig | None = field(default_factory=ElasticConfig)
    paste: PasteConfig | None = field(default_factory=PasteConfig)
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    static_prob: float = 0.0
    static_affine: AffineConfig = STATIC_AFFINE
    max_objects: int = 10
    min_object_pixels: int = 100
    samples_per_epoch: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.max_gap < 1 or self.max_objects < 1:
            raise ValueError("num_frames, max_gap and max_objects must be >= 1")
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {self.size}")


# ---------------------------------------------------------------------------------------------
# Frame selection, loading, relabelling
# ---------------------------------------------------------------------------------------------


def reflect_index(position: int, length: int) -> int:
    """``position`` folded into 0..length-1 by reflecting at both ends (AOT ``check_index``)."""
    if length <= 1:
        return 0
    period = 2 * (length - 1)
    position %= period
    return position if position < length else period - position


def sample_frame_indices(
    rng: np.random.Generator, length: int, num_frames: int, max_gap: int, reverse_prob: float = 0.5
) -> list[int]:
    """Indices of ``num_frames`` frames out of ``length``: steps of 1..max_gap from a random start.

    The start leaves room for the whole clip when the video is long enough (AOT ``get_prev_index``);
    otherwise positions reflect at the ends. With ``reverse_prob`` the clip runs backwards in time.
    """
    gaps = rng.integers(1, max_gap + 1, size=num_frames - 1)  # [N-1]
    start = int(rng.integers(0, max(length - int(gaps.sum()), 1)))
    positions = start + np.concatenate([[0], np.cumsum(gaps)])  # [N]
    indices = [reflect_index(int(p), length) for p in positions]
    if rng.random() < reverse_prob:
        indices = [length - 1 - i for i in indices]
    return indices


def _frame_path_of(record: VideoRecord, name: str) -> Path:
    """The image file of frame ``name``."""
    if not record.frame_paths:
        raise InputError(f"video {record.name!r}: training needs frame images, not a video file")
    return record.frame_paths[record.frame_names.index(name)]


def load_frame(record: VideoRecord, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One annotated frame: rgb [H, W, 3] float32 and labels [H, W] uint8."""
    rgb = read_image_rgb(_frame_path_of(record, name)).astype(np.float32)
    labels = record.labels(name)
    if labels.shape != rgb.shape[:2]:
        raise InputError(
            f"video {record.name!r} frame {name!r}: mask {labels.shape} differs from frame {rgb.shape[:2]}"
        )
    if labels.max(initial=0) > VOID_ID:
        raise InputError(f"video {record.name!r} frame {name!r}: object ids above 255 are not supported")
    return rgb, labels.astype(np.uint8)


def load_clip(record: VideoRecord, indices: Iterable[int]) -> Clip:
    """The annotated frames at ``indices`` (positions in ``record.annotated_frames``) as a :class:`Clip`."""
    names = record.annotated_frames
    pairs = [load_frame(record, names[i]) for i in indices]
    return Clip(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def relabel_by_reference(
    labels: np.ndarray, min_pixels: int, max_objects: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Keep the objects of the reference frame (labels[0]) with more than ``min_pixels`` pixels.

    Kept ids become 1..K in increasing order of their old id (a random ``max_objects`` of them when
    there are more); everything else, void included, becomes 0. Returns ([N, H, W] uint8, K).
    """
    counts = object_pixel_counts(labels[0])
    kept = [i for i in range(1, VOID_ID) if counts[i] > min_pixels]
    if len(kept) > max_objects:
        kept = sorted(rng.choice(kept, size=max_objects, replace=False).tolist())
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[labels], len(kept)


def to_tensors(clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [N, 3, H, W] float32 ImageNet-normalised (the inference normalisation,
    :func:`~vosuite.inference.preprocess.normalize_rgb`) and labels [N, 1, H, W] int64."""
    frames = normalize_rgb(clip.frames)  # [N, H, W, 3]
    frames = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32))
    labels = torch.from_numpy(clip.labels.astype(np.int64))[:, None]
    return frames, labels


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one OpenCV and one torch thread per worker (samples are seeded anyway)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loader_options(workers: int) -> dict[str, Any]:
    """DataLoader keyword arguments for ``workers`` worker processes.

    Workers are spawned, not forked: by the time a loader starts, OpenCV's and OpenMP's thread
    pools already run in the parent, and a forked child can inherit one of their locks held,
    which deadlocks it. Spawned workers start clean (the dataset is pickled to them).
    """
    if workers <= 0:
        return {"num_workers": 0}
    return {"num_workers": workers, "worker_init_fn": worker_init_fn, "multiprocessing_context": "spawn"}


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------

MAX_ATTEMPTS = 5


class ClipDataset(SeededDataset):
    """Augmented training clips from the videos of ``source`` (a vosuite Dataset or VideoRecords).

    Sample ``index`` uses video ``index % len(videos)`` (or, for a static pseudo-video, a random
    video's random annotated frame) and a Generator seeded by (config.seed, epoch, index); call
    :meth:`set_epoch` between epochs to draw new clips. Videos without annotations are skipped.
    """

    def __init__(self, source: Iterable[VideoRecord], config: ClipConfig = ClipConfig()) -> None:
        self.config = config
        self.records = [record for record in source if record.annotation_paths]
        if not self.records:
            raise InputError("no annotated video to sample training clips from")
        super().__init__(len(self.records), config.samples_per_epoch, config.seed)

    def __getitem__(self, index: int) -> dict[str, object]:
        rng = self.generator(index)
        for _ in range(MAX_ATTEMPTS):
            clip, obj_num, video = self.sample_clip(rng, index)
            if obj_num > 0:
                break
        frames, labels = to_tensors(clip)
        return {"frames": frames, "labels": labels, "obj_num": obj_num, "video": video}

    # -- one clip ------------------------------------------------------------------------------

    def sample_clip(self, rng: np.random.Generator, index: int) -> tuple[Clip, int, str]:
        """One augmented clip drawn with ``rng``: (clip, obj_num, video name)."""
        config = self.config
        if rng.random() < config.static_prob:
            record = self.records[int(rng.integers(len(self.records)))]
            clip = self._static_clip(rng, record)
        else:
            record = self.records[index % len(self.records)]
            clip = self._video_clip(rng, record)
        clip, obj_num = self._relabel(clip, rng)
        clip = self._motion(clip, rng)
        if config.shapes.prob > 0 and rng.random() < config.shapes.prob:
            clip, obj_num = add_shapes(clip, rng, config.shapes, obj_num, config.max_objects, self._donor_patch)
        if config.paste is not None and rng.random() < config.paste.prob:
            clip = self._paste(clip, rng, record, obj_num)
        clip = horizontal_flip(clip, rng, config.flip_prob, config.flip_per_frame)
        if config.jitter is not None:
            clip = colour_jitter(clip, rng, config.jitter)
        clip, obj_num = self._relabel(clip, rng)
        return clip, obj_num, record.name

    def _relabel(self, clip: Clip, rng: np.random.Generator) -> tuple[Clip, int]:
        labels, obj_num = relabel_by_reference(clip.labels, self.config.min_object_pixels, self.config.max_objects, rng)
        return Clip(clip.frames, labels), obj_num

    def _video_clip(self, rng: np.random.Generator, record: VideoRecord) -> Clip:
        config = self.config
        indices = sample_frame_indices(
            rng, len(record.annotation_paths), config.num_frames, config.max_gap, config.reverse_prob
        )
        return random_scale_crop(load_clip(record, indices), rng, config.size, self._crop(), config.crop_per_frame)

    def _static_clip(self, rng: np.random.Generator, record: VideoRecord) -> Clip:
        config = self.config
        image = load_clip(record, [int(rng.integers(len(record.annotation_paths)))])
        image = random_scale_crop(image, rng, config.size, self._crop())
        return static_pseudo_video(image, config.num_frames, rng, config.static_affine)[0]

    def _crop(self) -> CropConfig:
        """The crop config, with the clip-level ``min_object_pixels``."""
        return replace(self.config.crop, min_object_pixels=self.config.min_object_pixels)

    def _motion(self, clip: Clip, rng: np.random.Generator) -> Clip:
        if self.config.motion is not None:
            clip = random_affine(clip, rng, self.config.motion)
        if self.config.elastic is not None:
            clip = elastic(clip, rng, self.config.elastic)
        return clip

    def _paste(self, clip: Clip, rng: np.random.Generator, record: VideoRecord, obj_num: int) -> Clip:
        """Paste 1..max objects cut from other videos, ids obj_num+1, obj_num+2, ..."""
        paste = self.config.paste or PasteConfig()
        count = min(int(rng.integers(1, paste.max_objects + 1)), self.config.max_objects - obj_num)
        cutouts = [
            c for c in (self._donor_cutout(rng, record, paste.min_cutout_pixels) for _ in range(count)) if c is not None
        ]
        paths = [object_path(rng, c, clip.size, clip.num_frames, paste) for c in cutouts]
        return paste_objects(clip, cutouts, paths, obj_num + 1)

    def _donor_cutout(self, rng: np.random.Generator, record: VideoRecord, min_pixels: int) -> Cutout | None:
        """One object of a random annotated frame of another video (the same one if it is alone)."""
        others = [r for r in self.records if r.name != record.name] or self.records
        rgb, labels = _random_annotated_frame(rng, others)
        counts = object_pixel_counts(labels)
        ids = [i for i in range(1, VOID_ID) if counts[i] >= min_pixels]
        if not ids:
            return None
        return cut_object(rgb, labels, ids[int(rng.integers(len(ids)))])

    def _donor_patch(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """A random [h, w, 3] crop of a random annotated frame of any video (resized up if smaller)."""
        rgb = _random_annotated_frame(rng, self.records)[0].astype(np.float32)
        height, width = size
        if rgb.shape[0] < height or rgb.shape[1] < width:
            factor = max(height / rgb.shape[0], width / rgb.shape[1])
            rgb = cv2.resize(rgb, (int(np.ceil(rgb.shape[1] * factor)), int(np.ceil(rgb.shape[0] * factor))))
        top = int(rng.integers(rgb.shape[0] - height + 1))
        left = int(rng.integers(rgb.shape[1] - width + 1))
        return rgb[top:top + height, left:left + width]


def _random_annotated_frame(rng: np.random.Generator, records: list[VideoRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, labels) of a random annotated frame of a random one of ``records``."""
    donor = records[int(rng.integers(len(records)))]
    names = donor.annotated_frames
    return load_frame(donor, names[int(rng.integers(len(names)))])


def collate_clips(samples: list[dict[str, object]]) -> dict[str, object]:
    """Stack frames [B, T, 3, H, W] and labels [B, T, 1, H, W]; obj_num / index / video as lists."""
    return {"frames": torch.stack([s["frames"] for s in samples]),
            "labels": torch.stack([s["labels"] for s in samples]),
            "obj_num": [int(s["obj_num"]) for s in samples], "index": [int(s["index"]) for s in samples],
            "video": [str(s["video"]) for s in samples]}


def labelled_clips(config: Any, max_objects: int) -> ClipDataset:
    """The :class:`ClipDataset` of a training config's ``data`` section."""
    from vosuite.datasets import open_dataset

    data = config.data
    augmentations = {"paste": PasteConfig(prob=data.paste_prob),
                     "shapes": ShapesConfig(prob=data.shapes_prob, twin_prob=data.shapes_twin_prob)}
    if not data.augment:
        augmentations = {"jitter": None, "motion": None, "elastic": None, "paste": None}
    clip_config = ClipConfig(num_frames=data.num_frames, size=data.size, max_gap=data.max_gap,
                             reverse_prob=data.reverse_prob, static_prob=data.static_prob, max_objects=max_objects,
                             min_object_pixels=data.min_object_pixels,
                             crop=CropConfig(min_object_pixels=data.min_object_pixels), seed=config.train.seed,
                             **augmentations)
    return ClipDataset(open_dataset(data.dataset, data.root, data.split), clip_config)
