"""Decoding and PNG writing overlapped with compute (`vosuite.io.pipeline`, used by `segment` and
`infer`) against the same run done serially: median wall time of `Segmenter.segment` on one video.

    python benchmarks/pipeline_speed.py --video ../shared/data/davis2016/JPEGImages/480p/blackswan --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path


class SerialWriter:
    """BackgroundWriter's interface, writing at once in the caller's thread."""

    def __enter__(self) -> SerialWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, function, *args) -> None:
        function(*args)


@contextlib.contextmanager
def serial_pipeline():
    import vosuite.segment as segment

    saved = segment.prefetch, segment.BackgroundWriter
    segment.prefetch, segment.BackgroundWriter = (lambda items, depth=2: iter(items)), SerialWriter
    try:
        yield
    finally:
        segment.prefetch, segment.BackgroundWriter = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True, help="a frames folder (its first mask beside, DAVIS)")
    parser.add_argument("--mask", type=Path, help="first-frame mask (default: the DAVIS annotation)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtime", default="eager")
    args = parser.parse_args()
    import torch

    from vosuite.segment import Segmenter

    torch.set_num_threads(args.threads)
    mask = args.mask or Path(str(args.video).replace("JPEGImages", "Annotations")) / "00000.png"
    segmenter = Segmenter(progress=False, runtime=args.runtime)
    times: dict[str, list[float]] = {"overlapped": [], "serial": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for mode in times:  # interleaved, so drift hits both
                context = serial_pipeline() if mode == "serial" else contextlib.nullcontext()
                with context:
                    started = time.perf_counter()
                    report = segmenter.segment(args.video, mask, Path(tmp) / f"{mode}{repeat}")
                    times[mode].append(time.perf_counter() - started)
    frames = report.frames
    print(f"{args.video.name}: {frames} frames, {args.threads} threads, runtime {args.runtime}, "
          f"median of {args.repeats}")
    print("| pipeline | s | ms/frame |\n|---|---:|---:|")
    for mode, values in times.items():
        median = statistics.median(values)
        print(f"| {mode} | {median:.2f} | {1000 * median / frames:.1f} |")


if __name__ == "__main__":
    main()
