"""Evaluator speed against the floor of merely decoding every PNG it must read.

For each prediction set and thread count it times (a) decoding every ground-truth and prediction
PNG the semi-supervised protocol reads, with the same reader and the same thread pool, and (b) the
whole evaluation. It prints medians over repeats and the ratio eval / floor (goal: < 1.5).

    python benchmarks/eval_speed.py                     # DAVIS-16 dev videos from ../shared
    python benchmarks/eval_speed.py --repeats 9 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vosuite.datasets.registry import open_dataset
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator, read_prediction


def shared_root() -> Path:
    return Path(os.environ.get("VOSUITE_DATA", Path(__file__).resolve().parents[1].parent / "shared"))


def make_predictions(shared: Path, out: Path) -> None:
    davis = shared / "data" / "davis2016"
    subprocess.run([sys.executable, str(shared / "tools" / "make_predictions.py"), "--davis-root", str(davis),
                    "--sequences", str(davis / "ImageSets" / "val-dev.txt"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)


def files_read(videos, prediction_root: Path) -> list[tuple[object, Path]]:
    """(reader, path) for every PNG the semi-supervised evaluation decodes."""
    jobs = []
    for video in videos:
        frames = video.annotated_frames
        jobs += [(video.read_labels, video.annotation_paths[f]) for f in frames]
        jobs += [(read_prediction, prediction_root / video.name / f"{f}.png") for f in frames[1:-1]]
    return jobs


def time_floor(jobs, workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda job: job[0](job[1]), jobs))
    return time.perf_counter() - started


def time_eval(videos, prediction_root: Path, workers: int) -> float:
    started = time.perf_counter()
    Evaluator(EvaluationConfig(workers=workers)).evaluate(videos, prediction_root)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", type=Path, help="predictions root with one folder per set (default: generated)")
    parser.add_argument("--sets", nargs="+", default=["erode", "shift", "spurious"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    shared = shared_root()
    videos = list(open_dataset("davis2016", shared / "data" / "davis2016", "val-dev"))
    with tempfile.TemporaryDirectory() as tmp:
        prediction_root = args.pred or Path(tmp)
        if args.pred is None:
            make_predictions(shared, prediction_root)
        table = Table(title=f"vosuite eval vs PNG-decode floor, DAVIS-16 dev ({len(videos)} videos), "
                            f"median of {args.repeats}")
        for column in ("set", "threads", "PNGs", "floor ms", "eval ms", "eval/floor", "ms/frame"):
            table.add_column(column, justify="right")
        for name in args.sets:
            jobs = files_read(videos, prediction_root / name)
            for workers in args.workers:
                time_eval(videos, prediction_root / name, workers)  # warm the page cache and imports
                floors, evals = [], []
                for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
                    floors.append(time_floor(jobs, workers))
                    evals.append(time_eval(videos, prediction_root / name, workers))
                floor, evaluation = statistics.median(floors), statistics.median(evals)
                scored = sum(len(v.annotated_frames) for v in videos)
                table.add_row(name, str(workers), str(len(jobs)), f"{1000 * floor:.0f}", f"{1000 * evaluation:.0f}",
                              f"{evaluation / floor:.2f}", f"{1000 * evaluation / scored:.2f}")
        Console(width=120).print(table)


if __name__ == "__main__":
    main()
