"""CPU cost of vanilla vs deformable propagation as the long-term memory grows.

For each attention kind (``deaot-t`` vanilla, ``deaot-t-deform``) and each number of long-term
memory frames, a fresh subprocess (so ``ru_maxrss`` is that configuration's own peak) builds the
network with random weights, fills a memory of that many frames at the 480p stride-16 grid
(480x854 -> network input 481x849 -> 31x54 tokens) and times, under ``torch.inference_mode``:

* GPM: ``model.propagate`` only (the gated propagation module: long-term, short-term and self
  propagation), which is what deformable attention changes;
* frame: encoder + GPM + decoder of one frame (no memory update, no pre/post-processing).

It prints medians over ``--repeats`` runs (after one warm-up run) of wall time and of process CPU
time (less sensitive to other jobs on a shared host), and, per configuration, the peak
RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, whole process) after the GPM runs, and the RSS
just before the first propagation (model + memory bank), so "peak - before" is the propagation's
working memory.

    python benchmarks/propagation_memory.py                          # 1 5 20 100 frames, 2 threads
    python benchmarks/propagation_memory.py --frames 1 20 --repeats 7 --no-frame
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from vosuite.inference import network_input_size
from vosuite.models import DeAOT, get_config
from vosuite.nn.gpm import LayerMemory

MiB = 2**20


def current_rss() -> int:
    """Resident set size now, bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set size of this process so far, bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def random_memory(model: DeAOT, frames: int, size_2d: tuple[int, int]) -> tuple[list, list]:
    """Per-layer long-term memory of ``frames`` frames (tokens) and a short-term memory (maps)."""
    h, w = size_2d
    long_term, short_term = [], []
    for layer in model.LSTT.layers:
        dk, dv = layer.d_att * layer.att_heads, layer.expand_d
        tokens = [torch.randn(frames * h * w, 1, d) for d in (dk, dv, dv)]
        long_term.append(LayerMemory(*tokens))
        short_term.append(LayerMemory(*(torch.randn(1, d, h, w) for d in (dk, dv, dv))))
    return long_term, short_term


def timed(fn, repeats: int) -> dict[str, list[float]]:
    """Wall and process-CPU milliseconds of ``repeats`` calls after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return {"wall": wall, "cpu": cpu}


def worker(args: argparse.Namespace) -> None:
    """One configuration; prints one JSON line."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DeAOT(get_config(args.variant)).eval()
    img = torch.randn(1, 3, *network_input_size(480, 854))
    with torch.inference_mode():
        feats = model.encode_image(img)
        size_2d = tuple(feats[-1].shape[-2:])
        long_term, short_term = random_memory(model, args.worker_frames, size_2d)
        before = current_rss()
        gpm = timed(lambda: model.propagate(feats[-1], long_term, short_term), args.repeats)
        gpm_peak = peak_rss()
        frame = timed(lambda: full_frame(model, img, long_term, short_term), args.repeats) if args.frame else None
    print(json.dumps({"gpm": gpm, "frame": frame, "before": before, "peak": gpm_peak, "size_2d": size_2d}))


def full_frame(model: DeAOT, img: torch.Tensor, long_term: list, short_term: list) -> torch.Tensor:
    """Encoder + GPM + decoder of one frame."""
    feats = model.encode_image(img)
    outputs, _, _ = model.propagate(feats[-1], long_term, short_term)
    return model.decode(outputs, feats)


def run_config(args: argparse.Namespace, variant: str, frames: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--variant", variant, "--worker-frames", str(frames),
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if not args.frame:
        cmd.append("--no-frame")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 5, 20, 100])
    parser.add_argument("--variants", nargs="+", default=["deaot-t", "deaot-t-deform"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-frame", dest="frame", action="store_false", help="skip the full-frame timing")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--worker-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_frames is not None:
        worker(args)
        return
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} runs (after 1 warm-up)")
    print("| variant | LT frames | GPM wall ms (min-max) | GPM CPU ms | frame wall ms | peak RSS MiB "
          "| RSS before MiB | peak - before MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for frames in args.frames:  # variants interleaved so both see similar load on a shared host
        for variant in args.variants:
            r = run_config(args, variant, frames)
            wall, cpu = r["gpm"]["wall"], r["gpm"]["cpu"]
            gpm = f"{statistics.median(wall):.0f} ({min(wall):.0f}-{max(wall):.0f})"
            frame = f"{statistics.median(r['frame']['wall']):.0f}" if r["frame"] else "-"
            print(f"| {variant} | {frames} | {gpm} | {statistics.median(cpu):.0f} | {frame} | {r['peak'] / MiB:.0f} "
                  f"| {r['before'] / MiB:.0f} | {(r['peak'] - r['before']) / MiB:.0f} |", flush=True)


if __name__ == "__main__":
    main()
