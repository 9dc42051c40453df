"""Training data: clips sampled from vosuite datasets, their augmentations, pasted objects, static pseudo-videos."""

from vosuite.inference.preprocess import MEAN as IMAGENET_MEAN
from vosuite.inference.preprocess import STD as IMAGENET_STD
from vosuite.training.data.augment import (
    AffineConfig,
    Clip,
    CropConfig,
    ElasticConfig,
    JitterConfig,
    affine_matrices,
    colour_jitter,
    compose_affine,
    elastic,
    horizontal_flip,
    random_affine,
    random_scale_crop,
    warp_clip,
)
from vosuite.training.data.clips import (
    ClipConfig,
    ClipDataset,
    collate_clips,
    labelled_clips,
    load_clip,
    loader_options,
    relabel_by_reference,
    sample_frame_indices,
    to_tensors,
    worker_init_fn,
)
from vosuite.training.data.static import STATIC_AFFINE, static_pseudo_video
from vosuite.training.data.synthetic import Cutout, PasteConfig, cut_object, object_path, paste_objects

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STATIC_AFFINE",
    "AffineConfig",
    "Clip",
    "ClipConfig",
    "ClipDataset",
    "CropConfig",
    "Cutout",
    "ElasticConfig",
    "JitterConfig",
    "PasteConfig",
    "affine_matrices",
    "colour_jitter",
    "compose_affine",
    "cut_object",
    "elastic",
    "horizontal_flip",
    "collate_clips",
    "labelled_clips",
    "load_clip",
    "object_path",
    "paste_objects",
    "random_affine",
    "random_scale_crop",
    "relabel_by_reference",
    "sample_frame_indices",
    "static_pseudo_video",
    "to_tensors",
    "warp_clip",
    "loader_options",
    "worker_init_fn",
]
