"""``vosuite bench``: accuracy, speed, memory and the compute limit of models side by side.

For every model and runtime (``eager``, ``onnx``, ``onnx-int8``: ONNX with the static int8 encoder
of ``vosuite export onnx --int8``, calibrated on ``--calibration`` frames), in a fresh process (so
peak memory is its own): the semi-supervised predictions of a dataset split, scored in memory by the
evaluator (the numbers of ``vosuite infer`` + ``vosuite eval``), while timing

* **model ms/frame**: the inference core's ``step`` (preprocessing, network, upsampling, memory
  update), median over frames after each video's first;
* **end-to-end ms/frame**: from asking for a frame to holding its PNG bytes (JPEG decode, the
  step, the palette PNG vosuite writes: :func:`~vosuite.io.masks.encode_mask_png`), median over
  the same frames; fps = 1000 / that;
* **peak RSS** of the process (``ru_maxrss``);
* **GFLOPs/frame**: :class:`torch.utils.flop_counter.FlopCounterMode` over one eager step on the
  split's first video (matmuls and convolutions, multiply-adds counted twice);
* **the limit**: those FLOPs divided by this machine's measured float32 matmul rate (a 2048^3
  product, median of 5, at the same thread count): the fastest the network could run here.

The training-free baselines (``flow``, ``copy-first``) are always added, eager only.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

BASELINES = ("flow", "copy-first")
#: The real-time line of the plot: 40 ms a frame end to end (25 fps).
REAL_TIME_FPS = 25


@dataclass(frozen=True)
class BenchRow:
    """One model x runtime."""

    model: str
    runtime: str
    jf: float
    j: float
    f: float
    model_ms: float
    end_to_end_ms: float
    peak_rss_mib: float
    gflops: float | None
    limit_ms: float | None
    frames: int

    @property
    def fps(self) -> float:
        return 1000.0 / self.end_to_end_ms if self.end_to_end_ms else float("nan")


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul rate (GFLOP/s) at the current torch thread count."""
    import torch

    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


class _TimedCore:
    """An inference core whose ``step`` records its wall time."""

    def __init__(self, core: Any) -> None:
        self.core, self.times = core, []

    def step(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self.core.step(*args, **kwargs)
        self.times.append(time.perf_counter() - start)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)


def step_gflops(model: Any, video: Any, size: int | None) -> float | None:
    """GFLOPs of one step after the reference frame (None for networks without FLOPs, the baselines)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vosuite.inference.cores import make_core
    from vosuite.inference.prompts import dataset_video_frames, video_prompts

    if not any(True for _ in model.parameters()):
        return None
    core = make_core(model, size=size)
    frames = dataset_video_frames(video)
    first_index, first = next(iter(video_prompts(video, True).items()))
    rgb = next(f for i, f in enumerate(frames) if i == first_index)
    core.step(rgb, first((rgb.shape[0], rgb.shape[1])) if callable(first) else first)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        core.step(rgb)
    return counter.get_total_flops() / 1e9


def int8_export(model_name: str | None, checkpoint: str | None, calibration: str | None, folder: str) -> str:
    """``folder`` holding an ONNX export of the model whose encoder is static int8, calibrated on
    :func:`~vosuite.onnx.export.calibration_frames` of ``calibration``."""
    from vosuite.errors import InputError
    from vosuite.factory import create_model
    from vosuite.onnx.export import calibration_frames, export_model, quantize_encoder

    if calibration is None:
        raise InputError("--runtimes onnx-int8 needs --calibration DIR (a folder of frame folders)")
    model = create_model(model_name, weights=checkpoint or "default")
    quantize_encoder(export_model(model, folder), model, calibration_frames(calibration))
    return folder


def measure(model_name: str, checkpoint: str | None, runtime: str, dataset: str, root: str, split: str | None,
            size: int | None, videos: int | None, calibration: str | None = None) -> BenchRow:
    """One model x runtime in this process (see the module docstring)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vosuite-bench-") as folder:
        onnx_dir = int8_export(model_name, checkpoint, calibration, folder) if runtime == "onnx-int8" else None
        return _measure(model_name, checkpoint, "onnx" if onnx_dir else runtime, onnx_dir, dataset, root, split,
                        size, videos, runtime)


def _measure(model_name: str, checkpoint: str | None, runtime: str, onnx_dir: str | None, dataset: str, root: str,
             split: str | None, size: int | None, videos: int | None, label: str) -> BenchRow:
    import torch

    from vosuite.inference.prompts import dataset_video_frames, video_prompts
    from vosuite.inference.propagate import propagate
    from vosuite.io.masks import encode_mask_png
    from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
    from vosuite.segment import Segmenter
    from vosuite.training.validation import validation_videos

    segmenter = Segmenter(model=model_name, checkpoint=checkpoint, size=size, progress=False, runtime=runtime,
                          onnx_dir=onnx_dir)
    val = type("Val", (), {"dataset": dataset, "root": root, "split": split, "videos": []})()
    records = validation_videos(val)[:videos] if videos else validation_videos(val)
    first_frame_only = dataset.lower().startswith("davis")
    model_times: list[float] = []
    end_to_end: list[float] = []

    def predictions(video: Any) -> Iterator[tuple[str, np.ndarray]]:
        core = _TimedCore(segmenter.core())
        start = time.perf_counter()
        for index, labels in propagate(core, dataset_video_frames(video), video_prompts(video, first_frame_only)):
            encode_mask_png(labels)  # what vosuite writes
            now = time.perf_counter()
            if index > 0:
                end_to_end.append(now - start)
            start = now
            yield video.frame_names[index], labels
        model_times.extend(core.times[1:])

    with torch.no_grad():
        scores = Evaluator(EvaluationConfig(task="semi", workers=1)).evaluate_arrays(records, predictions)
    scores = scores.global_scores()
    gflops = step_gflops(segmenter.model, records[0], segmenter.size) if runtime == "eager" else None
    return BenchRow(model=model_name or checkpoint or "default", runtime=label, jf=float(scores["J&F-Mean"]),
                    j=float(scores["J-Mean"]), f=float(scores["F-Mean"]),
                    model_ms=1e3 * statistics.median(model_times), end_to_end_ms=1e3 * statistics.median(end_to_end),
                    peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, gflops=gflops,
                    limit_ms=None, frames=len(end_to_end))


def run_isolated(request: dict[str, Any]) -> BenchRow:
    """:func:`measure` in a fresh ``python -m vosuite.bench`` process (its own peak memory)."""
    done = subprocess.run([sys.executable, "-m", "vosuite.bench", json.dumps(request)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        from vosuite.errors import InputError

        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"bench {request['model']} ({request['runtime']}): {last}")
    return BenchRow(**json.loads(done.stdout.strip().splitlines()[-1]))


def bench(models: Sequence[str], runtimes: Sequence[str], dataset: str, root: str, split: str | None,
          size: int | None = None, videos: int | None = None, threads: int = 2, calibration: str | None = None
          ) -> tuple[list[BenchRow], float]:
    """(rows, matmul GFLOP/s): every model (``NAME`` or ``NAME=CHECKPOINT``) x runtime, then the
    baselines; GFLOPs of an eager row fill its other runtimes' rows; each row gets its limit."""
    import torch

    rows = []
    entries = [(entry, runtime) for entry in models for runtime in runtimes]
    entries += [(name, "eager") for name in BASELINES if name not in models]
    for entry, runtime in entries:
        name, _, checkpoint = entry.partition("=")
        request = {"model": name if not checkpoint else None, "checkpoint": checkpoint or None, "runtime": runtime,
                   "dataset": dataset, "root": str(root), "split": split, "size": size, "videos": videos,
                   "threads": threads, "calibration": None if calibration is None else str(calibration)}
        row = run_isolated(request)
        rows.append(BenchRow(**{**asdict(row), "model": entry}))
    torch.set_num_threads(threads)
    rate = matmul_gflops()
    by_model = {row.model: row.gflops for row in rows if row.gflops is not None}
    return [BenchRow(**{**asdict(row), "gflops": by_model.get(row.model),
                        "limit_ms": 1e3 * by_model[row.model] / rate if row.model in by_model else None})
            for row in rows], rate


def print_table(rows: list[BenchRow], rate: float, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vosuite bench (matmul rate {rate:.0f} GFLOP/s)")
    for column in ("model", "runtime", "J&F", "J", "F", "model ms/frame", "end-to-end ms/frame", "fps",
                   "peak RSS MiB", "GFLOPs/frame", "limit ms/frame"):
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right")
    for row in rows:
        table.add_row(row.model, row.runtime, f"{row.jf:.3f}", f"{row.j:.3f}", f"{row.f:.3f}", f"{row.model_ms:.1f}",
                      f"{row.end_to_end_ms:.1f}", f"{row.fps:.1f}", f"{row.peak_rss_mib:.0f}",
                      "-" if row.gflops is None else f"{row.gflops:.1f}",
                      "-" if row.limit_ms is None else f"{row.limit_ms:.1f}")
    (console or Console(width=160)).print(table)


def plot(rows: list[BenchRow], out: str | Path) -> Path:
    """J&F against end-to-end ms/frame, marker area by peak memory (the layout of Fig. 4 of arXiv 2401.13937)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vosuite.io.atomic import atomic_path

    figure, axes = plt.subplots(figsize=(8, 4.8))
    for row in rows:  # one legend entry a row: annotations of close points overlap
        baseline = row.model in BASELINES
        axes.scatter(row.end_to_end_ms, row.jf, s=row.peak_rss_mib / 4, alpha=0.6, label=f"{row.model} ({row.runtime})",
                     marker="s" if baseline else "o", color="grey" if baseline else None)
        if baseline:  # the grey squares are told apart by name
            axes.annotate(row.model, (row.end_to_end_ms, row.jf), fontsize=8, xytext=(6, 4), textcoords="offset points")
    axes.axvline(1000 / REAL_TIME_FPS, color="black", linestyle="--", linewidth=0.8)
    axes.text(1000 / REAL_TIME_FPS, axes.get_ylim()[0], f" {REAL_TIME_FPS} fps", fontsize=8, va="bottom")
    axes.set_xlim(0, 1.1 * max(row.end_to_end_ms for row in rows))
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=0.5)
    axes.set_xlabel("end-to-end ms per frame (lower is faster)")
    axes.set_ylabel("J&F")
    axes.set_title("accuracy against speed\nmarker area: peak memory; grey squares: training-free baselines",
                   fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
    return out


def _worker(request_json: str) -> None:
    import torch

    request = json.loads(request_json)
    torch.set_num_threads(int(request.pop("threads")))
    torch.manual_seed(0)
    print(json.dumps(asdict(measure(request["model"], request["checkpoint"], request["runtime"], request["dataset"],
                                    request["root"], request["split"], request["size"], request["videos"],
                                    request.get("calibration")))))


if __name__ == "__main__":
    _worker(sys.argv[1])
