"""How close label-free reference masks come to the human ones (issue 13).

For the first frame of every video of a split: pseudo-objects of the classical segmentation
(``vosuite.training.data.pseudo_objects``) and, with ``--teacher``, those re-segmented by the
teacher on the frame (``distill.reference_masks: teacher``). Prints, per source, the best IoU of
any pseudo-object with the human mask (mean, median, share above 0.5) and ms per frame (median).

    python benchmarks/pseudo_objects.py --root ../shared/data/davis2016 --split train [--teacher deaot-l]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vosuite.datasets import open_dataset
from vosuite.inference.preprocess import normalize_rgb
from vosuite.io.frames import read_image_rgb
from vosuite.io.masks import read_mask
from vosuite.training.data.pseudo_objects import PseudoObjectConfig, pseudo_objects


def best_iou(labels: np.ndarray, human: np.ndarray) -> float:
    ious = [((labels == k) & human).sum() / max(((labels == k) | human).sum(), 1) for k in range(1, labels.max() + 1)]
    return float(max(ious, default=0.0))


def teacher_refine(name: str, rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label-free mode's teacher step on one frame (a 16n+1 crop of it, as in training)."""
    from types import SimpleNamespace

    from vosuite.factory import create_model
    from vosuite.training.methods.distill.method import DistillMethod

    method = DistillMethod.__new__(DistillMethod)
    method.options = SimpleNamespace(long_term_gap=None, max_memory_frames=None)
    method.teacher = teacher_refine.cache.setdefault(name, create_model(name))
    h, w = (16 * ((side - 1) // 16) + 1 for side in rgb.shape[:2])
    frame = torch.from_numpy(normalize_rgb(rgb[:h, :w]).transpose(2, 0, 1).copy())[None].float()
    region = torch.from_numpy(labels[:h, :w].astype(np.int64))[None, None]
    with torch.no_grad():
        refined = method.teacher_reference(frame, region, [int(labels.max())])
    out = labels.copy()
    out[:h, :w] = refined[0, 0].numpy()
    return out


teacher_refine.cache = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/davis2016")
    parser.add_argument("--split", default="train")
    parser.add_argument("--dataset", default="davis2016")
    parser.add_argument("--teacher", default=None, help="also refine with this registered teacher")
    parser.add_argument("--max-objects", type=int, default=PseudoObjectConfig.max_objects)
    args = parser.parse_args()
    config = PseudoObjectConfig(max_objects=args.max_objects)
    rows: dict[str, list[float]] = {"pseudo": [], "teacher": []}
    times: dict[str, list[float]] = {"pseudo": [], "teacher": []}
    for index, video in enumerate(open_dataset(args.dataset, args.root, args.split)):
        rgb = read_image_rgb(video.frame_paths[0])
        human = read_mask(next(iter(video.annotation_paths.values()))) > 0
        start = time.perf_counter()
        labels = pseudo_objects(rgb, np.random.default_rng(index), config)
        times["pseudo"].append(time.perf_counter() - start)
        rows["pseudo"].append(best_iou(labels, human))
        if args.teacher:
            start = time.perf_counter()
            refined = teacher_refine(args.teacher, rgb, labels)
            times["teacher"].append(time.perf_counter() - start)
            rows["teacher"].append(best_iou(refined, human))
    print("| reference masks | videos | best IoU, mean | median | IoU > 0.5 | ms/frame |")
    print("|---|---:|---:|---:|---:|---:|")
    for source, values in rows.items():
        if values:
            print(f"| {source} | {len(values)} | {np.mean(values):.3f} | {np.median(values):.3f} | "
                  f"{sum(v > 0.5 for v in values)} | {1e3 * statistics.median(times[source]):.1f} |")


if __name__ == "__main__":
    main()
