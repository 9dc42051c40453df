"""DINO's attention probe of a backbone on a DAVIS split (issue 14): does its attention find the
object before any Betrayed-by-Attention block is trained on it?

    python benchmarks/dino_attention.py --split val-dev --models random DINO_RUN/latest.pt
    python benchmarks/dino_attention.py --name dino-vits16 --models dino_deitsmall16_pretrain.pth
    python benchmarks/dino_attention.py --models random RUN/last.pt --figure attention.png  # and look

Per frame, the last block's CLS attention of each head (``attention_probe``),
thresholded to keep 60 % of its mass (DINO, Sec. 4.2.1, Fig. 4), upsampled to the frame (nearest)
and scored by its Jaccard index with the DAVIS-2016 foreground. Mean over each video's annotated
frames, then over videos. Columns: the best head (the head the paper's Fig. 4 shows), the mean
over heads, and the mask of the heads' mean map; the centred ellipse (training-free,
``vosuite.unsupervised.baselines``) is scored on the same frames. ``random`` is the
variant with its seeded random initialisation (seed 0): a probe of what the architecture alone gives.
``--figure`` draws, for frame 20 of the first three videos, each backbone's heads' maps (min-max
scaled, viridis) next to the frame.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from attention_probe import DINO_MASS, cls_attention, mass_masks
from vosuite.checkpoints.dino import build_vit
from vosuite.datasets import open_dataset
from vosuite.datasets.base import VideoRecord
from vosuite.io.frames import read_image_rgb
from vosuite.metrics.region import region_similarity
from vosuite.nn.vit import VisionTransformer, dino_frame_size, dino_preprocess
from vosuite.unsupervised.baselines import centred_ellipse


def upsample(masks: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """bool [k, h, w] -> bool [k, H, W], nearest."""
    scaled = torch.nn.functional.interpolate(masks[None].float(), size=size, mode="nearest")[0]
    return scaled.numpy() > 0.5


def video_scores(vit: VisionTransformer, video: VideoRecord, short_side: int, mass: float) -> np.ndarray:
    """[annotated frames, heads + 2]: J of each head's mask, of the mean map's mask, of the ellipse."""
    rows = []
    frames = dict(zip(video.frame_names, video.frame_paths, strict=True))
    for name, mask_path in video.annotation_paths.items():
        rgb = read_image_rgb(frames[name])
        truth = video.read_labels(mask_path) == 1
        size = dino_frame_size(*rgb.shape[:2], short_side=short_side)
        attention = cls_attention(vit, dino_preprocess(rgb, size))  # [heads, h, w]
        masks = torch.cat([mass_masks(attention, mass), mass_masks(attention.mean(0, keepdim=True), mass)])
        masks = upsample(masks, truth.shape)
        ellipse = centred_ellipse(*truth.shape) > 0
        rows.append([region_similarity(m, truth) for m in masks] + [region_similarity(ellipse, truth)])
    return np.asarray(rows)


def backbone(model: str, name: str) -> VisionTransformer:
    """'random' (seed 0) or a DINO file's teacher backbone."""
    if model == "random":
        torch.manual_seed(0)
        return build_vit(name)
    return build_vit(name, model, part="teacher")


def heat(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[h, w] -> RGB uint8 [H, W, 3], min-max scaled, viridis, nearest-upsampled."""
    scaled = (values - values.min()) / max(float(values.max() - values.min()), 1e-12)
    grey = cv2.resize((scaled * 255).astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)
    return cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)[:, :, ::-1]


def figure(models: list[str], name: str, videos: list[VideoRecord], short_side: int, out: str) -> None:
    """One row per video (frame 20, or its last): the frame, then every backbone's heads."""
    vits = [backbone(model, name) for model in models]
    rows = []
    for video in videos[:3]:
        rgb = read_image_rgb(video.frame_paths[min(20, len(video.frame_paths) - 1)])
        size = dino_frame_size(*rgb.shape[:2], short_side=short_side)
        image = dino_preprocess(rgb, size)
        tiles = [cv2.resize(rgb, size[::-1])]
        for vit in vits:
            tiles += [heat(head.numpy(), size) for head in cls_attention(vit, image)]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    scale = min(1.0, 1600 / grid.shape[1])  # a page's width
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(out, grid[:, :, ::-1])
    heads = vits[0].blocks[-1].attn.num_heads
    print(f"wrote {out}: rows = videos; columns = the frame, then {heads} heads of each of {', '.join(models)}")


def probe(model: str, name: str, videos: list[VideoRecord], short_side: int, mass: float) -> str:
    vit = backbone(model, name)
    start = time.perf_counter()
    per_video = np.stack([video_scores(vit, video, short_side, mass).mean(0) for video in videos])
    seconds = time.perf_counter() - start
    means = per_video.mean(0)  # [heads + 2]
    heads = means[:-2]
    best = int(heads.argmax())
    return (f"| {model} | {heads[best]:.3f} (head {best}) | {heads.mean():.3f} | {means[-2]:.3f} | "
            f"{means[-1]:.3f} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/davis2016")
    parser.add_argument("--split", default="val-dev")
    parser.add_argument("--name", default="dino-vitt16", help="the ViT variant (vosuite models)")
    parser.add_argument("--models", nargs="+", default=["random"], help="'random' or DINO checkpoints")
    parser.add_argument("--short-side", type=int, default=240)
    parser.add_argument("--mass", type=float, default=DINO_MASS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", help="also draw the heads' maps of frame 20 of three videos (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    videos = list(open_dataset("davis2016", args.root, args.split))
    print(f"DAVIS-2016 {args.split}, {len(videos)} videos, {args.name} at short side {args.short_side}, "
          f"{args.mass:.0%} of the CLS attention mass; Jaccard with the foreground")
    print("| backbone | J, best head | J, mean over heads | J, heads' mean map | J, centred ellipse | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in args.models:
        print(probe(model, args.name, videos, args.short_side, args.mass), flush=True)
    if args.figure:
        figure(args.models, args.name, videos, args.short_side, args.figure)


if __name__ == "__main__":
    main()
