
"""CPU speed and memory of the DeAOT and S2S / S2S++ variants, and memory over a long stream.

    python benchmarks/deaot_speed.py variants [--frames 12] [--variants deaot-t deaot-s]
    python benchmarks/deaot_speed.py variants --variants s2s-mnv2 s2spp-mnv2 s2spp [--size 256]
    python benchmarks/deaot_speed.py stream [--frames 1000]

``variants``: for every variant, eager (contiguous) and channels_last, a fresh subprocess runs the
Segmenter's per-video ``core().step`` (DeAOT's ``InferenceCore``, S2S's ``S2SInferenceCore``) on
480p frames (DAVIS-16 blackswan from VOSUITE_DATA, or a generated clip; one object) and reports
the median ms/frame (reference frame and one warm-up frame excluded; the span is the whole step:
preprocessing, encoder, propagation or recurrence, decoder, upsampling to 480x854, memory or
state update) and the process's peak RSS (ru_maxrss). ``--size``: the internal resolution
(default: the model's; S2S: short side 256, i.e. 256x448 for 480x854). Weights are a seeded
random initialisation: the cost does not depend on their values. S2S runs one recurrent state per
object, so its cost grows with the number of objects; DeAOT's up to 10 objects share one pass.

``stream``: DeAOT-T over a looped 480p video; prints the process RSS every 100 frames, which must
stay flat once the long-term memory cap is reached.
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vosuite.factory import create_model

VARIANTS = ["deaot-t", "deaot-s", "deaot-b", "deaot-l", "r50-deaot-l"]


def shared_root() -> Path:
    return Path(os.environ.get("VOSUITE_DATA", Path(__file__).resolve().parents[1].parent / "shared"))


def load_clip(max_frames: int) -> tuple[list[np.ndarray], np.ndarray, str]:
    """RGB frames [480, 854, 3] and the first mask: blackswan when available, else generated."""
    from vosuite.io.frames import open_frames
    from vosuite.io.masks import binarize_0_255, read_mask

    davis = shared_root() / "data" / "davis2016"
    frames_dir = davis / "JPEGImages" / "480p" / "blackswan"
    if frames_dir.is_dir():
        frames = [f.rgb for _, f in zip(range(max_frames), open_frames(frames_dir), strict=False)]
        mask = binarize_0_255(read_mask(davis / "Annotations" / "480p" / "blackswan" / "00000.png"))
        return frames, mask, "DAVIS-16 blackswan 480x854"
    from vosuite.datasets.synthetic import SyntheticClipConfig, render_clip

    frames, labels = render_clip(SyntheticClipConfig(num_frames=max(max_frames, 2), height=480, width=854))
    return frames[:max_frames], labels[0], "generated clip 480x854"


def looped(frames: list[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """``count`` frames going back and forth over ``frames`` (no jump at the loop point)."""
    cycle = frames + frames[-2:0:-1]
    for index in range(count):
        yield cycle[index % len(cycle)]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_core(variant: str, channels_last: bool, threads: int, size: int | None = None, **memory: int):
    """A fresh per-video core of ``variant`` (any family) with seeded random weights; ``memory``:
    the Segmenter's DeAOT memory options (long_term_gap, max_memory_frames)."""
    import torch

    from vosuite.cpu import set_threads
    from vosuite.segment import Segmenter

    set_threads(threads)
    torch.manual_seed(0)
    model = create_model(variant, weights=None)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Segmenter(model=model, size=size, progress=False, **memory).core()


def worker(args: argparse.Namespace) -> None:
    """One variant in this process: print a JSON line with the timings."""
    import torch

    frames, mask, source = load_clip(args.frames)
    core = build_core(args.variant, args.channels_last, args.threads, args.size)
    times = []
    with torch.inference_mode():
        core.step(frames[0], mask=mask)
        for frame in looped(frames[1:], args.frames):
            started = time.perf_counter()
            core.step(frame)
            times.append(time.perf_counter() - started)
    steady = times[1:]
    print(json.dumps({"variant": args.variant, "channels_last": args.channels_last, "source": source,
                      "median_ms": 1000 * statistics.median(steady),
                      "p10_ms": 1000 * float(np.percentile(steady, 10)),
                      "p90_ms": 1000 * float(np.percentile(steady, 90)),
                      "frames": len(steady), "peak_rss_mib": peak_rss_mib()}))


def variants(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = []
    for variant in args.variants:
        for channels_last in (False, True):
            command = [sys.executable, __file__, "worker", "--variant", variant, "--frames", str(args.frames),
                       "--threads", str(args.threads)] + (["--channels-last"] if channels_last else [])
            command += ["--size", str(args.size)] if args.size is not None else []
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    table = Table(title=f"CPU inference at 480p, {args.threads} threads ({rows[0]['source']})")
    for column in ("variant", "memory format", "median ms/frame", "p10-p90 ms", "frames", "peak RSS MiB"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["variant"], "channels_last" if row["channels_last"] else "contiguous",
                      f"{row['median_ms']:.0f}", f"{row['p10_ms']:.0f}-{row['p90_ms']:.0f}", str(row["frames"]),
                      f"{row['peak_rss_mib']:.0f}")
    Console(width=120).print(table)


def stream(args: argparse.Namespace) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    frames, mask, source = load_clip(50)
    core = build_core("deaot-t", False, args.threads, long_term_gap=args.gap, max_memory_frames=args.cap)
    table = Table(title=f"DeAOT-T over a {args.frames}-frame looped 480p stream ({source}), "
                        f"long-term gap {args.gap}, cap {args.cap} frames, {args.threads} threads")
    for column in ("frames done", "long-term frames", "RSS MiB", "peak RSS MiB", "median ms/frame (window)"):
        table.add_column(column, justify="right")
    window: list[float] = []
    with torch.inference_mode():
        core.step(frames[0], mask=mask)
        for index, frame in enumerate(looped(frames[1:], args.frames - 1), start=2):
            started = time.perf_counter()
            core.step(frame)
            window.append(time.perf_counter() - started)
            if index % args.every == 0 or index == args.frames:
                table.add_row(str(index), str(core.memory.long_term_frames), f"{rss_mib():.0f}",
                              f"{peak_rss_mib():.0f}", f"{1000 * statistics.median(window):.0f}")
                print(f"{index} frames, RSS {rss_mib():.0f} MiB", file=sys.stderr, flush=True)
                window = []
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("variants", "worker"):
        sub = commands.add_parser(name)
        sub.add_argument("--frames", type=int, default=12)
        sub.add_argument("--threads", type=int, default=2)
        sub.add_argument("--variants", nargs="+", default=VARIANTS)
        sub.add_argument("--variant", default="deaot-t")
        sub.add_argument("--channels-last", action="store_true")
        sub.add_argument("--size", type=int, help="internal resolution (default: the model's)")
    sub = commands.add_parser("stream")
    sub.add_argument("--frames", type=int, default=1000)
    sub.add_argument("--threads", type=int, default=2)
    sub.add_argument("--gap", type=int, default=5, help="long-term memory gap (frames)")
    sub.add_argument("--cap", type=int, default=32, help="long-term memory cap (frames)")
    sub.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    {"variants": variants, "worker": worker, "stream": stream}[args.command](args)


if __name__ == "__main__":
    main()
