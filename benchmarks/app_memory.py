"""`vosuite app` on a long video: the server's resident memory while it opens a generated video
and propagates through it, sampled every 50 frames (it must stay flat: frames are read from the
session folder one at a time and the model's memory is capped).

    python benchmarks/app_memory.py --frames 1000 --model deaot-t-deform --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--model", default="deaot-t-deform")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="240x320", help="frame size HxW of the generated video")
    args = parser.parse_args()
    import torch
    from fastapi.testclient import TestClient

    from vosuite.app.server import SESSION_HEADER, create_app, page_session
    from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
    from vosuite.io.masks import read_mask

    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_clip(Path(tmp) / "clip", SyntheticClipConfig(num_frames=args.frames, height=height, width=width))
        first = read_mask(root / "Annotations" / "shapes" / "00000.png")
        with TestClient(create_app(Path(tmp))) as client:
            client.headers[SESSION_HEADER] = page_session(client.get("/").text)
            started = time.perf_counter()
            client.post("/api/open/path", json={"path": str(root / "JPEGImages" / "shapes")}).raise_for_status()
            opened = time.perf_counter() - started
            client.put(f"/api/annotation/0?width={width}&height={height}", content=first.tobytes()).raise_for_status()
            print(f"opened {args.frames} frames ({width}x{height}) in {opened:.1f} s; RSS {rss_mib():.0f} MiB")
            client.post("/api/propagate", json={"frame": 0, "model": args.model}).raise_for_status()
            samples, next_mark = [], 0
            while True:
                job = client.get("/api/status").json()["job"]
                if job["done"] >= next_mark:
                    samples.append((job["done"], rss_mib()))
                    next_mark += 50
                if job["state"] != "running":
                    break
                time.sleep(0.05)
            print(f"{job['state']}: {job['done']} frames at {job['fps']} fps")
    done = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    late = rss[done >= done.max() // 4]
    print("| frames done | RSS (MiB) |\n|---:|---:|")
    for count, value in samples[::max(1, len(samples) // 10)]:
        print(f"| {count} | {value:.0f} |")
    print(f"RSS over the last three quarters: {late.min():.0f} to {late.max():.0f} MiB; "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
