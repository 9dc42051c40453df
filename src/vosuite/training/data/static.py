"""Static-image pre-training: a pseudo-video made of random affine warps of one annotated image.

The STM / AOT recipe (aot-benchmark ``StaticTrain``: ``RandomAffine(degrees=20, translate=(0.1, 0.1),
scale=(0.9, 1.1), shear=10)`` on every frame of the clip) turns an image with a mask into a clip
whose object moves and deforms between frames, so the matching stages learn from images alone.
"""

from __future__ import annotations

import numpy as np

from vosuite.training.data.augment import AffineConfig, Clip, affine_matrices, warp_clip

#: AOT StaticTrain's affine range.
STATIC_AFFINE = AffineConfig(degrees=20.0, translate=0.1, scale=(0.9, 1.1), shear=10.0, prob=1.0, per_frame=True)


def static_pseudo_video(
    image: Clip, num_frames: int, rng: np.random.Generator, config: AffineConfig = STATIC_AFFINE
) -> tuple[Clip, np.ndarray]:
    """``num_frames`` random affine warps of the one-frame clip ``image``, and their [N, 2, 3] matrices.

    Frames are warped bilinearly and labels with nearest neighbour, so an object's area in frame i
    is about |det(matrices[i, :, :2])| times its area in ``image`` (while it stays inside).
    """
    if image.num_frames != 1:
        raise ValueError(f"static_pseudo_video takes a one-frame clip, got {image.num_frames} frames")
    matrices = affine_matrices(rng, num_frames, image.size, config, per_frame=True)  # [N, 2, 3]
    repeated = Clip(np.repeat(image.frames, num_frames, axis=0), np.repeat(image.labels, num_frames, axis=0))
    return warp_clip(repeated, matrices), matrices
