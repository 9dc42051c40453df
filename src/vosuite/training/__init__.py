"""Training: the clip data pipeline (:mod:`vosuite.training.data`) and AOT's losses (:mod:`vosuite.training.losses`)."""

from vosuite.training.data import ClipConfig, ClipDataset, worker_init_fn
from vosuite.training.losses import (
    AOTLoss,
    LossConfig,
    bootstrapped_cross_entropy,
    hard_pixel_fraction,
    soft_jaccard_loss,
)

__all__ = [
    "AOTLoss",
    "ClipConfig",
    "ClipDataset",
    "LossConfig",
    "bootstrapped_cross_entropy",
    "hard_pixel_fraction",
    "soft_jaccard_loss",
    "worker_init_fn",
]
