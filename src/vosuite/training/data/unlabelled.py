"""Unlabelled training clips (or plain frames, ``num_frames=1``) from any folder of videos.

For label-free methods (distillation's label-free student, self-supervised methods): samples
carry frames only. A source is any vosuite dataset (its annotations are ignored) or a folder of
videos in the ``generic`` layout's ``JPEGImages/<video>/`` form; every frame of a video is a
candidate, not only annotated ones. With ``reference_objects``, pseudo-objects of the first
frame (:mod:`~vosuite.training.data.pseudo_objects`) become its labels, so a clip trains a
semi-supervised network with no human mask. Each sample::

    {"frames": [N, 3, H, W] float32 (ImageNet-normalised, the inference normalisation; or RGB in
                0..1 with ``normalize=False``),
     "video": str, "frame_indices": [N] int64,
     "labels": [N, 1, H, W] int64 and "obj_num": int (with reference_objects: frame 0's pseudo-objects)}

N frames with random gaps of 1..``max_gap`` (reflected at the ends, randomly reversed), scaled
and cropped together to ``size``, flipped and colour-jittered together. Every random choice comes
from a numpy Generator seeded by (seed, epoch, index), as for labelled clips.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.io.frames import read_image_rgb
from vosuite.training.data.augment import (
    Clip,
    CropConfig,
    JitterConfig,
    colour_jitter,
    horizontal_flip,
    random_scale_crop,
)
from vosuite.training.data.clips import sample_frame_indices, to_tensors
from vosuite.training.data.pseudo_objects import PseudoObjectConfig, pseudo_objects
from vosuite.training.data.seeded import SeededDataset


@dataclass(frozen=True)
class UnlabelledClipConfig:
    """How unlabelled clips are drawn (the labelled :class:`~vosuite.training.data.ClipConfig`'s
    meanings; ``num_frames=1`` gives plain frames)."""

    num_frames: int = 3
    size: tuple[int, int] = (193, 193)
    max_gap: int = 12
    reverse_prob: float = 0.5
    crop: CropConfig = field(default_factory=CropConfig)
    flip_prob: float = 0.5
    jitter: JitterConfig | None = field(default_factory=JitterConfig)
    samples_per_epoch: int | None = None
    seed: int = 0
    normalize: bool = True  # False: RGB in 0..1 (for networks with their own normalisation, e.g. DINO)
    # pseudo-objects of the first frame as its reference mask (label-free distillation); None: no labels
    reference_objects: PseudoObjectConfig | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.max_gap < 1:
            raise ValueError("num_frames and max_gap must be >= 1")


class UnlabelledClipDataset(SeededDataset):
    """Clips of frames from ``source`` videos (annotations ignored); sample ``index`` uses video
    ``index % len(videos)``. Videos need frame images (not a video file)."""

    def __init__(self, source: Iterable[VideoRecord], config: UnlabelledClipConfig = UnlabelledClipConfig()) -> None:
        self.config = config
        self.records = [record for record in source if record.frame_paths]
        if not self.records:
            raise InputError("no video with frame images to sample unlabelled clips from")
        super().__init__(len(self.records), config.samples_per_epoch, config.seed)

    def __getitem__(self, index: int) -> dict[str, object]:
        config = self.config
        rng = self.generator(index)
        record = self.records[index % len(self.records)]
        indices = sample_frame_indices(rng, len(record.frame_paths), config.num_frames, config.max_gap,
                                       config.reverse_prob)
        frames = np.stack([read_image_rgb(record.frame_paths[i]).astype(np.float32) for i in indices])
        clip = Clip(frames, np.zeros(frames.shape[:3], np.uint8))  # no labels: a plain random window
        clip = random_scale_crop(clip, rng, config.size, config.crop)
        clip = horizontal_flip(clip, rng, config.flip_prob)
        if config.jitter is not None:
            clip = colour_jitter(clip, rng, config.jitter)
        sample: dict[str, object] = {"video": record.name, "frame_indices": torch.tensor(indices, dtype=torch.long)}
        if config.reference_objects is not None:
            labels = np.zeros(clip.frames.shape[:3], np.uint8)
            labels[0] = pseudo_objects(clip.frames[0], rng, config.reference_objects)  # frame 0 only
            clip = Clip(clip.frames, labels)
            sample["obj_num"] = int(labels[0].max())
        if config.normalize:
            tensors, _ = to_tensors(clip)
        else:
            tensors = torch.from_numpy(np.ascontiguousarray(clip.frames.transpose(0, 3, 1, 2))) / 255.0
        sample["frames"] = tensors
        if config.reference_objects is not None:
            sample["labels"] = torch.from_numpy(clip.labels.astype(np.int64))[:, None]  # [N, 1, H, W], 0 after frame 0
        return sample


def collate_frames(samples: list[dict[str, object]]) -> dict[str, object]:
    """Stack frames [B, N, 3, H, W] and frame indices [B, N]; index / video as lists."""
    return {"frames": torch.stack([s["frames"] for s in samples]),
            "frame_indices": torch.stack([s["frame_indices"] for s in samples]),
            "index": [int(s["index"]) for s in samples], "video": [str(s["video"]) for s in samples]}


def unlabelled_clips(config, num_frames: int | None = None, normalize: bool = True,
                     reference_objects: PseudoObjectConfig | None = None) -> UnlabelledClipDataset:
    """The :class:`UnlabelledClipDataset` of a training config's ``data`` section (its dataset's
    videos, every frame; ``num_frames`` overrides ``data.num_frames``, 1 = plain frames;
    ``reference_objects``: pseudo-objects as the first frame's labels)."""
    from vosuite.datasets import open_dataset

    data = config.data
    clip_config = UnlabelledClipConfig(num_frames=num_frames or data.num_frames, size=data.size,
                                       max_gap=data.max_gap, reverse_prob=data.reverse_prob,
                                       jitter=JitterConfig() if data.augment else None, seed=config.train.seed,
                                       normalize=normalize, reference_objects=reference_objects)
    return UnlabelledClipDataset(open_dataset(data.dataset, data.root, data.split), clip_config)
