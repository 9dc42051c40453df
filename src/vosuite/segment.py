"""Segment videos: the Python API (:class:`Segmenter`), ``vosuite segment`` (one video) and
``vosuite infer`` (a dataset).

    from vosuite import Segmenter
    seg = Segmenter()                                  # the shipped student; model=, checkpoint=, device=
    for index, labels in seg.propagate("clip.mp4", {0: first_mask}):   # in memory, one frame at a time
        ...
    report = seg.segment("clip.mp4", "first.png", "masks/", overlay="overlay.mp4")   # files
    core = seg.core()                                  # per-frame API: core.step(rgb, mask)

Frames are streamed (one decoded frame and one label map in memory at a time) and each mask is
written as a palette PNG as soon as it is computed (atomically), so memory stays bounded whatever
the length: DeAOT's long-term memory is capped (see :mod:`vosuite.inference.memory`); S2S / S2S++
carry one fixed-size recurrent state per object (see :mod:`vosuite.inference.s2s`). Output
folders keep a manifest of what vosuite wrote (:mod:`vosuite.io.output`): ``overwrite`` replaces
only that. The library sets no threads and no seeds (the CLI does).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from torch import nn

from vosuite.datasets.base import VideoRecord, files_by_stem
from vosuite.datasets.registry import open_dataset
from vosuite.distributed import barrier, init_distributed, resolve_device, shard, shutdown, sum_over_ranks
from vosuite.errors import InputError
from vosuite.inference.core import VideoCore
from vosuite.inference.cores import make_core
from vosuite.inference.prompts import dataset_video_frames, lazy_mask, read_prompt_mask, video_prompts
from vosuite.inference.propagate import Prompt, Video, propagate
from vosuite.io.frames import open_frames
from vosuite.io.masks import write_mask
from vosuite.io.output import OutputFolder, prepare_output
from vosuite.io.overlay import claimed_overlay
from vosuite.io.pipeline import BackgroundWriter, prefetch
from vosuite.options import InferenceOptions
from vosuite.progress import progress_bar

Update = Callable[[int, int, str], None]

def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class SegmentReport:
    """What a run did: frames, seconds (inference + writing), fps, peak memory (MiB), objects."""

    frames: int
    seconds: float
    peak_memory_mib: float
    objects: int
    out: Path

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        plural = "" if self.objects == 1 else "s"
        return (f"segmented {self.frames} frames ({self.objects} object{plural}) in {self.seconds:.2f} s "
                f"({self.fps:.2f} fps); peak memory {self.peak_memory_mib:.0f} MiB; masks in {self.out}")


class Segmenter:
    """Semi-supervised video object segmentation with any registered model (``vosuite models``).

    Args:
        model: a model name (``deaot-t-deform``, ``s2spp-mnv2`` ...; default: the shipped student)
            or a network (:class:`~vosuite.models.deaot.DeAOT`, :class:`~vosuite.models.s2s.S2S`).
        checkpoint: weights (vosuite or aot-benchmark format); default: the packaged weights.
        device: where the network runs (``"cpu"``, ``"cuda"``); frames and label maps stay on the CPU.
        size, long_term_gap, max_memory_frames, merge, runtime: the inference settings, each None
            when not given (:class:`~vosuite.options.InferenceOptions` says what each means and
            its default; a family refuses a setting it has no use for). ``size`` defaults to the
            size the weights were trained for (``model.default_size``).
        progress: draw progress bars (on a terminal).
        console: where reports go (default: stdout).
        onnx_dir: with ``runtime="onnx"``, a ``vosuite export onnx`` folder of this model (default:
            exported once per model and weights into the user's cache, :mod:`vosuite.onnx.cache`).

    Threads and seeds are the caller's (``vosuite`` sets them from ``--threads``).
    """

    def __init__(self, model: str | nn.Module | None = None, checkpoint: str | os.PathLike | None = None,
                 device: str = "cpu", size: int | None = None, long_term_gap: int | None = None,
                 max_memory_frames: int | None = None, merge: str | None = None,
                 progress: bool = True, console: Console | None = None, runtime: str | None = None,
                 onnx_dir: str | os.PathLike | None = None) -> None:
        self.options = InferenceOptions(size=size, long_term_gap=long_term_gap, max_memory_frames=max_memory_frames,
                                        merge=merge, runtime=runtime)
        if isinstance(model, nn.Module):
            self.model = model.eval()
        else:
            from vosuite.factory import create_model

            self.model = create_model(model, weights=checkpoint if checkpoint is not None else "default")
        self.device = str(resolve_device(device)) if device != "cpu" else device
        self.model = self.model.to(self.device)
        self.backend = None  # eager: the network runs its own graphs
        if self.options.uses_onnx or onnx_dir is not None:
            from vosuite.onnx.runtime import runtime_backend

            self.backend = runtime_backend(self.model, self.options.runtime, onnx_dir, device)
        self.runtime = self.options.runtime or "eager"
        self.size = size if size is not None else getattr(self.model, "default_size", None)
        self.core()  # validates the options and the size early
        self.progress = progress
        self.console = console or Console()

    def core(self) -> VideoCore:
        """A fresh per-video state for the frame-by-frame API: ``core.step(rgb, mask)``
        (:class:`~vosuite.inference.core.InferenceCore` or :class:`~vosuite.inference.s2s.S2SInferenceCore`)."""
        return make_core(self.model, self.options, device=self.device, size=self.size, backend=self.backend)

    # -- in memory ----------------------------------------------------------------------------

    def propagate(self, video: Video, prompts: Mapping[int, Prompt]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, label_map)`` ([H, W] uint8, the prompts' object ids) for every
        frame of ``video`` (a video file, a frames folder, or an iterable of RGB uint8 arrays
        [H, W, 3]); ``prompts`` maps frame indices to label maps [H, W] whose objects start (or
        are corrected) there. Nothing is written; see :func:`vosuite.inference.propagate.propagate`."""
        return propagate(self.core(), video, prompts)

    # -- one video ----------------------------------------------------------------------------

    def segment(self, source: str | os.PathLike, first_mask: str | os.PathLike, out_dir: str | os.PathLike,
                masks_dir: str | os.PathLike | None = None, overlay: str | os.PathLike | None = None,
                overwrite: bool = False) -> SegmentReport:
        """Segment a video file or frames folder from its first frame's mask; writes
        ``<out_dir>/<frame>.png`` for every frame (and ``overlay`` when given).

        ``masks_dir`` holds masks for later frames, named like the frames (``00007.png``): their
        objects overwrite the prediction there, and new ids start being followed from there.
        """
        frames = open_frames(source)
        prompts: dict[int, Prompt] = {0: read_prompt_mask(first_mask, frames.size)}
        later = self._later_masks(masks_dir, frames.names)
        names = frames.names
        for index, name in enumerate(names or []):
            if index > 0 and name in later:
                prompts[index] = lazy_mask(later.pop(name))
        for name in list(later) if names is None else []:  # video files: frames are 00000, 00001, ...
            if name.isdigit() and int(name) > 0:
                prompts[int(name)] = lazy_mask(later.pop(name))
        inputs = (source, first_mask, masks_dir)
        core = self.core()
        total = frames.num_frames
        started = time.perf_counter()
        pending: deque = deque()  # frames handed to the core, not yet written (at most one)

        def rgb_stream() -> Iterator[np.ndarray]:
            for frame in prefetch(frames):  # decoded ahead in a thread
                pending.append(frame)
                yield frame.rgb

        with prepare_output(Path(out_dir), overwrite, inputs) as folder, \
                claimed_overlay(overlay, frames.fps, folder, overwrite, inputs) as draw, \
                BackgroundWriter() as writer, self._progress("segmenting", self.progress) as update:
            for index, labels in propagate(core, rgb_stream(), prompts):
                frame = pending.popleft()
                writer.submit(write_mask, folder.file(f"{frame.name}.png"), labels)
                if draw is not None:
                    draw.write(frame.rgb, labels)
                elapsed = time.perf_counter() - started
                update(index + 1, total or index + 1, f"{(index + 1) / elapsed:.1f} fps")
        if later:
            unused = ", ".join(sorted(str(p.name) for p in later.values()))
            self.console.print(f"warning: masks for no frame of {source} were not used: {unused}")
        return SegmentReport(frames=core.frames_seen, seconds=time.perf_counter() - started,
                             peak_memory_mib=peak_memory_mib(), objects=len(core.object_ids), out=folder.path)

    @staticmethod
    def _later_masks(masks_dir: str | os.PathLike | None, names: list[str] | None) -> dict[str, Path]:
        if masks_dir is None:
            return {}
        folder = Path(masks_dir)
        if not folder.is_dir():
            raise InputError(f"{folder}: masks folder not found")
        masks = files_by_stem(folder, (".png",))
        if names is not None:
            known = set(names)
            for stem, path in masks.items():
                if stem not in known:
                    raise InputError(f"{path}: mask names no frame of the video")
        return masks

    @staticmethod
    @contextlib.contextmanager
    def _progress(description: str, enabled: bool) -> Iterator[Update]:
        """A progress bar whose updates carry a rate text (dropped when the bar is off)."""
        with progress_bar(description, enabled=enabled) as update:
            yield lambda done, total, rate: update(done, total, rate=rate)

    # -- datasets -----------------------------------------------------------------------------

    def infer(self, dataset: str, root: str | os.PathLike, out_dir: str | os.PathLike,
              split: str | os.PathLike | None = None, overwrite: bool = False) -> SegmentReport:
        """Predict every frame of every selected video: ``<out_dir>/<video>/<frame>.png``.

        The objects of the first annotated frame are followed (DAVIS: the first frame only, the
        semi-supervised protocol); for YouTube-VOS and generic folders every object starts at the
        first frame that annotates it (its mask there is merged in, as aot-benchmark does). Frames
        before the first annotation come out as background.

        Under ``torchrun --nproc_per_node N`` every rank takes every N-th video
        (:func:`vosuite.distributed.shard`): rank 0 prepares the output folder, the others attach
        to it, and the report sums every rank's frames and objects; the files are the ones a
        single process writes.
        """
        videos = open_dataset(dataset, root, split)
        if not videos.videos():
            raise InputError(f"--root {root}: no {dataset} videos found there (is --dataset right?)")
        context = init_distributed(self.device)
        try:
            return self._infer_shard(videos, context, root, out_dir, overwrite, dataset)
        finally:
            shutdown(context)

    def _infer_shard(self, videos, context, root: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool,
                     dataset: str) -> SegmentReport:
        folder = prepare_output(Path(out_dir), overwrite, (root,)) if context.is_main else None
        barrier(context)
        folder = folder or OutputFolder.attach(out_dir)
        try:
            return self._infer_into(videos, context, folder, dataset)
        finally:
            folder.close()

    def _infer_into(self, videos, context, folder: OutputFolder, dataset: str) -> SegmentReport:
        names = shard(videos.videos(), context)
        frames = objects = 0
        started = time.perf_counter()
        first_frame_only = dataset.lower().startswith("davis")
        with self._progress("videos", self.progress and context.is_main) as update:
            for index, name in enumerate(names):
                done, found = self._infer_video(videos.video(name), folder, first_frame_only)
                frames += done
                objects += found
                elapsed = time.perf_counter() - started
                update(index + 1, len(names), f"{frames / elapsed:.1f} fps")
        frames, objects = (int(v) for v in sum_over_ranks([frames, objects], context))
        barrier(context)
        return SegmentReport(frames=frames, seconds=time.perf_counter() - started,
                             peak_memory_mib=peak_memory_mib(), objects=objects, out=folder.path)

    def _infer_video(self, video: VideoRecord, folder: OutputFolder, first_frame_only: bool) -> tuple[int, int]:
        core = self.core()
        count = 0
        frames = prefetch(dataset_video_frames(video))  # decoded ahead, written behind, in threads
        with BackgroundWriter() as writer:
            for index, labels in propagate(core, frames, video_prompts(video, first_frame_only)):
                writer.submit(write_mask, folder.file(f"{video.name}/{video.frame_names[index]}.png"), labels)
                count += 1
        if not core.object_ids:
            raise InputError(f"video {video.name!r}: the annotations hold no object to follow")
        return count, len(core.object_ids)
