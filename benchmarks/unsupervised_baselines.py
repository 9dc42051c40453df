"""Training-free unsupervised baselines on a DAVIS split (issue 14): J, F and J&F of the
DAVIS-2016 single-object output (``vosuite discover --single-object``), scored with the
unsupervised protocol (official per-sequence matching), and ms per frame (median over videos).

    python benchmarks/unsupervised_baselines.py --split val-dev            # ellipse, motion-saliency
    python benchmarks/unsupervised_baselines.py --split train --fit        # the ellipse's axes, on train
    python benchmarks/unsupervised_baselines.py --models ellipse RUN/final.pt   # a trained bba model too

A ``--models`` entry ending in ``.pt`` is a Betrayed-by-Attention checkpoint; its row adds the
J&F of every proposal (``vosuite discover`` output, official per-sequence matching), next to
the single-object output's.

``--fit`` scores a grid of ellipse semi-axes and prints the best (the shipped default,
``vosuite.unsupervised.baselines.ELLIPSE_AXES``, came from this on DAVIS-16 train).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from accuracy import chair_dataset  # noqa: E402  (benchmarks/ is the script's folder)
from vosuite.datasets import open_dataset
from vosuite.datasets.base import VideoRecord
from vosuite.io.frames import read_image_rgb
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.unsupervised.baselines import centred_ellipse
from vosuite.unsupervised.discoverer import FOREGROUND_RULES, Discoverer


def score(videos: list[VideoRecord], predict) -> dict[str, float]:
    evaluator = Evaluator(EvaluationConfig(task="unsupervised", workers=1))
    scores = evaluator.evaluate_arrays(videos, predict).global_scores()
    return {key: float(value) for key, value in scores.items()}


def discoverer_predictions(discoverer: Discoverer, times: list[float], single_object: bool = True):
    def predict(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        start, count = time.perf_counter(), 0
        frames = video.frame_paths[0].parent
        output = discoverer.single_object(frames) if single_object else discoverer.discover(frames)
        for index, labels in output:
            count += 1
            yield video.frame_paths[index].stem, labels
        times.append(1e3 * (time.perf_counter() - start) / max(count, 1))
    return predict


def fit_ellipse(videos: list[VideoRecord]) -> None:
    shapes = {video.name: read_image_rgb(video.frame_paths[0]).shape[:2] for video in videos}
    rows = []
    for ax, ay in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6), (0.3, 0.4, 0.5, 0.6, 0.7)):
        def predict(video: VideoRecord, axes=(ax, ay)) -> Iterator[tuple[str, np.ndarray]]:
            mask = centred_ellipse(*shapes[video.name], axes)
            return ((path.stem, mask) for path in video.frame_paths)
        rows.append(((ax, ay), score(videos, predict)))
        print(f"axes {ax:.1f} x {ay:.1f}: J {rows[-1][1]['J-Mean']:.3f}", flush=True)
    best = max(rows, key=lambda row: row[1]["J-Mean"])
    print(f"best axes {best[0]}: J {best[1]['J-Mean']:.3f}, J&F {best[1]['J&F-Mean']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/davis2016")
    parser.add_argument("--split", default="val-dev")
    parser.add_argument("--models", nargs="+", default=["ellipse", "motion-saliency"])
    parser.add_argument("--fit", action="store_true", help="fit the ellipse's axes (use on train)")
    parser.add_argument("--chair", action="store_true", help="the PUMaVOS chair clip instead of a DAVIS split")
    parser.add_argument("--foreground", nargs="+", default=["border"], choices=FOREGROUND_RULES,
                        help="the single-object rules to score a bba model with (one row each)")
    parser.add_argument("--taus", nargs="+", type=float, default=[None],
                        help="clustering thresholds to score a bba model at (default: the model's own)")
    args = parser.parse_args()
    if args.chair:
        with tempfile.TemporaryDirectory() as tmp:
            report(list(open_dataset("generic", chair_dataset(Path(tmp)), None)), "PUMaVOS chair", args.models,
                   args.foreground, args.taus)
        return
    videos = list(open_dataset("davis2016", args.root, args.split))
    if args.fit:
        fit_ellipse(videos)
        return
    report(videos, f"DAVIS-2016 {args.split}", args.models, args.foreground, args.taus)


def report(videos: list[VideoRecord], title: str, models: list[str], rules: list[str],
           taus: list[float | None]) -> None:
    print(f"{title}, {len(videos)} videos, single-object output, unsupervised protocol")
    print("| model | tau | foreground rule | J-Mean | F-Mean | J&F-Mean | J&F, every proposal | ms/frame |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in models:
        checkpoint = name if name.endswith(".pt") else None
        discoverer = Discoverer(None if checkpoint else name, checkpoint=checkpoint, progress=False)
        for tau in taus if not discoverer.baseline else [None]:
            discoverer.tau = tau if tau is not None else discoverer.tau
            every = "-"
            if not discoverer.baseline:
                every = f"{score(videos, discoverer_predictions(discoverer, [], False))['J&F-Mean']:.3f}"
            for rule in rules if not discoverer.baseline else ["-"]:
                discoverer.foreground_rule = rule
                times: list[float] = []
                scores = score(videos, discoverer_predictions(discoverer, times))
                shown = f"{discoverer.tau:g}" if not discoverer.baseline else "-"
                print(f"| {name} | {shown} | {rule} | {scores['J-Mean']:.3f} | {scores['F-Mean']:.3f} | "
                      f"{scores['J&F-Mean']:.3f} | {every} | {statistics.median(times):.1f} |", flush=True)


if __name__ == "__main__":
    main()
