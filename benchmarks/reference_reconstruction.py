"""Diagnostic: how well a DeAOT model reproduces the mask it is *given*.

    python benchmarks/reference_reconstruction.py                      # the shipped student
    python benchmarks/reference_reconstruction.py --checkpoint runs/a/final.pt --split train

For the first annotated frame of every video, the frame is propagated against itself with its
ground-truth identities (the reference frame's own pass, what the auxiliary loss trains) and
decoded; the IoU of that prediction with the mask that went in is a ceiling on what propagation
can reach: a model that cannot redraw the mask it was handed cannot track it better later. Runs at
the checkpoint's internal size. Prints mean / median / min IoU over the videos.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vosuite.datasets import open_dataset
from vosuite.factory import create_model
from vosuite.inference.core import model_input_size
from vosuite.inference.preprocess import preprocess_image, resize_label
from vosuite.io.frames import read_image_rgb


@torch.no_grad()
def reconstruction_iou(model: torch.nn.Module, rgb: np.ndarray, truth: np.ndarray, size: int | None) -> float:
    """IoU (all objects pooled) of the reference frame's own prediction with its ground truth."""
    hw = model_input_size(model, *rgb.shape[:2], size)
    img = preprocess_image(rgb, hw)
    label = resize_label(torch.from_numpy(truth.astype(np.int64))[None, None], hw)
    obj_num = int(truth[truth != 255].max(initial=0))
    feats = model.encode_image(img)
    outputs, _, _ = model.propagate(feats[-1], ref_id_emb=model.id_embedding(model.one_hot(label)))
    logits = model.decode(outputs, feats)[:, :obj_num + 1]
    pred = F.interpolate(logits, size=truth.shape, mode="bilinear", align_corners=model.cfg.align_corners)
    pred = pred.argmax(1)[0].numpy()
    valid = truth != 255
    inter = ((pred == truth) & (truth > 0) & valid).sum()
    union = (((pred > 0) | (truth > 0)) & valid).sum()
    return float(inter / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    shared = Path(os.environ.get("VOSUITE_DATA", "../shared"))
    parser.add_argument("--root", type=Path, default=shared / "data/davis2016")
    parser.add_argument("--split", default="train")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(weights=args.checkpoint if args.checkpoint is not None else "default")
    ious = []
    for video in open_dataset("davis2016", args.root, args.split):
        first = video.annotated_frames[0]
        ious.append(reconstruction_iou(model, read_image_rgb(video.frame_paths[0]), video.labels(first),
                                       model.default_size))
    print(f"{args.checkpoint or 'shipped ' + model.cfg.name}: reference-frame self-reconstruction IoU over "
          f"{len(ious)} {args.split} videos: mean {np.mean(ious):.3f}, median {np.median(ious):.3f}, "
          f"min {np.min(ious):.3f}")


if __name__ == "__main__":
    main()
