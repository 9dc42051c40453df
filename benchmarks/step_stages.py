"""Where a DeAOT frame's time goes: median ms per stage of the streaming step, eager or ONNX.

    python benchmarks/step_stages.py [--model deaot-t-deform] [--size 128] [--runtime onnx]
        [--onnx-dir DIR] [--threads 2] [--frames 40]

Runs :class:`~vosuite.inference.core.InferenceCore` over DAVIS-16 blackswan at 480p (from
VOSUITE_DATA; a generated clip when absent), one object, and times each stage of every frame
after the first two: JPEG decode, preprocessing (resize + normalise), encoder, propagation,
decoder, upsampling + softmax + argmax, memory update, the rest of the step (Python glue), and
writing the palette PNG. The stages are timed by wrapping the functions the step calls (the
wrappers add about a microsecond each). Prints one line per stage with the median and the share
of the end-to-end median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path


def shared_root() -> Path:
    return Path(os.environ.get("VOSUITE_DATA", Path(__file__).resolve().parents[1].parent / "shared"))


def frame_paths() -> tuple[list[Path], Path] | None:
    davis = shared_root() / "data" / "davis2016"
    folder = davis / "JPEGImages" / "480p" / "blackswan"
    if not folder.is_dir():
        return None
    return sorted(folder.glob("*.jpg")), davis / "Annotations" / "480p" / "blackswan" / "00000.png"


class StageClock:
    """Accumulates seconds per stage for the current frame; ``close_frame`` files them."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.frames: list[dict[str, float]] = []

    def wrap(self, stage: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[stage] += time.perf_counter() - start
        return timed

    def close_frame(self) -> None:
        self.frames.append(dict(self.current))
        self.current = defaultdict(float)


def instrument(core, clock: StageClock) -> None:
    """Wrap the step's callees (module functions, the backend's and the model's methods) with ``clock``."""
    import vosuite.inference.core as core_module
    import vosuite.inference.step as step_module

    graphs = core.backend or core.model
    for owner, name in ((graphs, "encode_image"), (graphs, "propagate"), (graphs, "decode"),
                        (core.model, "memory_from_current")):
        stage = {"encode_image": "encoder", "memory_from_current": "memory update"}.get(name, name)
        setattr(owner, name, clock.wrap(stage, getattr(owner, name)))
    step_module.aggregate_groups = clock.wrap("upsample + argmax", step_module.aggregate_groups)
    step_module.remember_frame = clock.wrap("memory update", step_module.remember_frame)
    core_module.preprocess_image = clock.wrap("preprocess", core_module.preprocess_image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deaot-t-deform")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--size", type=int, default=None, help="internal size (default: the model's)")
    parser.add_argument("--runtime", choices=("eager", "onnx"), default="eager")
    parser.add_argument("--onnx-dir", default=None, help="a vosuite export onnx folder (e.g. with --int8)")
    parser.add_argument("--onnx-propagation", action="store_true",
                        help="run the propagation graph too (OnnxDeAOTBackend(onnx_propagation=True))")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args(argv)

    import torch

    from vosuite.factory import create_model
    from vosuite.inference.core import InferenceCore
    from vosuite.io.frames import read_image_rgb
    from vosuite.io.masks import binarize_0_255, read_mask, write_mask
    from vosuite.onnx.runtime import OnnxDeAOTBackend, runtime_backend

    torch.set_num_threads(args.threads)
    found = frame_paths()
    if found is None:
        print("DAVIS-16 blackswan not found under VOSUITE_DATA", file=sys.stderr)
        return 2
    paths, mask_path = found
    paths = paths[:args.frames]
    model = create_model(args.model, weights=args.checkpoint or "default")
    if args.onnx_propagation:
        backend = OnnxDeAOTBackend(model, args.onnx_dir, onnx_propagation=True)
    else:
        backend = runtime_backend(model, args.runtime, args.onnx_dir)
    core = InferenceCore(model, size=args.size if args.size is not None else model.default_size, backend=backend)
    clock = StageClock()
    instrument(core, clock)
    decode = clock.wrap("JPEG decode", read_image_rgb)
    write = clock.wrap("PNG write", write_mask)
    totals = []
    with tempfile.TemporaryDirectory() as out:
        for index, path in enumerate(paths):
            start = time.perf_counter()
            rgb = decode(path)
            if index == 0:
                core.step(rgb, mask=binarize_0_255(read_mask(mask_path)))
            else:
                core.step(rgb)
            write(Path(out) / f"{index:05d}.png", core.labels)
            totals.append(time.perf_counter() - start)
            clock.current["total"] = totals[-1]
            clock.close_frame()
    frames = clock.frames[2:]
    total = statistics.median(f["total"] for f in frames) * 1000
    stages = sorted({k for f in frames for k in f} - {"total"})
    medians = {s: statistics.median(f.get(s, 0.0) for f in frames) * 1000 for s in stages}
    glue = statistics.median(
        f["total"] - sum(f.get(s, 0.0) for s in stages) for f in frames) * 1000
    runtime = "onnx + onnx propagation" if args.onnx_propagation else args.runtime
    print(f"{args.model} {runtime} size {core.size} input {core.input_size} threads {args.threads}, "
          f"{len(frames)} frames of blackswan 480p (medians)")
    for stage in sorted(stages, key=lambda s: -medians[s]):
        print(f"  {stage:<18} {medians[stage]:7.2f} ms  {100 * medians[stage] / total:5.1f} %")
    print(f"  {'rest (glue)':<18} {glue:7.2f} ms  {100 * glue / total:5.1f} %")
    print(f"  {'end to end':<18} {total:7.2f} ms  ({1000 / total:.1f} fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
