"""Time and peak memory of the discovery clustering against the number of tokens.

    python benchmarks/discover_scaling.py --frames 30 --grids 6x10 12x20 18x30 --repeats 3

Random per-frame keys [T, 384, h, w] and a random spatio-temporal block (the cost depends on the
sizes, not the weights) through :func:`vosuite.unsupervised.clustering.discover_objects` (windows of 3
frames, key frames every 10). The original's non-windowed ``inference`` + ``hierarchical_cluster``
would hold one [T*hw, K*hw] attention matrix and [3*hw, 3*hw] distances per window as well; its
memory-efficient form (the one the fixture pins) is this algorithm. Each run is a fresh process;
prints medians of wall time and of the peak RSS growth (MiB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def worker(frames: int, h: int, w: int, tau: float) -> dict[str, float]:
    import resource
    import time

    import torch

    from vosuite.models.bba import BbAConfig, BetrayedByAttention
    from vosuite.unsupervised.clustering import discover_objects

    torch.manual_seed(0)
    block = BetrayedByAttention(BbAConfig(backbone=None)).eval().temporal_transformer[0]
    keys = torch.randn(frames, 384, h, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with torch.no_grad():
        result = discover_objects(block, keys, tau=tau, ratio=10)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    return {"seconds": seconds, "peak_mib": peak, "clusters": len(result.centroids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--grids", nargs="+", default=["6x10", "12x20", "18x30"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--worker", nargs=3, metavar=("FRAMES", "H", "W"))
    args = parser.parse_args()
    if args.worker:
        frames, h, w = args.worker
        print(json.dumps(worker(int(frames), int(h), int(w), args.tau)))
        return
    print(f"{args.frames} frames, key frames every 10, tau {args.tau}; medians over {args.repeats} processes")
    print(f"{'grid':>8} {'tokens':>8} {'seconds':>9} {'ms/frame':>9} {'peak MiB':>9} {'clusters':>9}")
    for grid in args.grids:
        h, w = (int(x) for x in grid.split("x"))
        command = [sys.executable, __file__, "--tau", str(args.tau), "--worker", str(args.frames), str(h), str(w)]
        runs = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                for _ in range(args.repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        print(f"{grid:>8} {args.frames * h * w:>8} {seconds:>9.2f} {1000 * seconds / args.frames:>9.1f} "
              f"{statistics.median(r['peak_mib'] for r in runs):>9.0f} {runs[0]['clusters']:>9}")


if __name__ == "__main__":
    main()
