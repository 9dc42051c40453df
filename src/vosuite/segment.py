"""Segment videos: ``vosuite segment`` (one video) and ``vosuite infer`` (a dataset).

    from vosuite import Segmenter
    seg = Segmenter(model="deaot-t", checkpoint="deaot-t.pt", size=480)
    report = seg.segment("clip.mp4", "first.png", "masks/", overlay="overlay.mp4")
    core = seg.core()                                  # per-frame API: core.step(rgb, mask)

Frames are streamed (one decoded frame and one label map in memory at a time) and each mask is
written as a palette PNG as soon as it is computed (atomically), so memory stays bounded whatever
the length: DeAOT's long-term memory is capped (see :mod:`vosuite.inference.deaot`); S2S / S2S++
carry one fixed-size recurrent state per object (see :mod:`vosuite.inference.s2s`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console

from vosuite.datasets.base import VideoRecord, files_by_stem
from vosuite.datasets.registry import open_dataset
from vosuite.errors import InputError
from vosuite.inference.core import MAX_OBJECT_ID, InferenceCore, VideoCore
from vosuite.inference.deaot import DEFAULT_MAX_LONG_TERM_FRAMES, MemoryConfig
from vosuite.inference.s2s import MERGES, S2SInferenceCore
from vosuite.inference.weights import DEFAULT_MODEL, load_model
from vosuite.io.frames import open_frames, read_image_rgb
from vosuite.io.masks import VOID_ID, object_ids, read_mask, write_mask
from vosuite.io.output import prepare_output
from vosuite.io.overlay import OverlayWriter
from vosuite.models.build import model_family
from vosuite.models.deaot import DeAOT
from vosuite.models.s2s import S2S
from vosuite.progress import progress_bar

Update = Callable[[int, int, str], None]

#: Masks whose aspect ratio is within this fraction of the frames' are resized (nearest).
ASPECT_TOLERANCE = 0.01


def set_threads(threads: int | None) -> int:
    """``torch.set_num_threads``: ``threads`` (at most the cores), default every core. Seeds torch."""
    cores = os.cpu_count() or 1
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    count = cores if threads is None else min(threads, cores)
    torch.set_num_threads(count)
    torch.manual_seed(0)
    return count


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def fit_mask(mask: np.ndarray, frame_size: tuple[int, int], path: Path | str) -> np.ndarray:
    """``mask`` at ``frame_size``: unchanged, resized (nearest) when the aspect ratios agree within
    1 %, else an InputError naming the file."""
    height, width = frame_size
    if tuple(mask.shape) == (height, width):
        return mask
    mh, mw = mask.shape
    if abs((mw / mh) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise InputError(f"{path}: mask is {mw}x{mh} but the frames are {width}x{height} "
                         "(aspect ratios differ; cannot resize)")
    resized = cv2.resize(mask.astype(np.uint16 if mask.max(initial=0) > 255 else np.uint8), (width, height),
                         interpolation=cv2.INTER_NEAREST)
    return resized.astype(mask.dtype)


def read_prompt_mask(path: str | os.PathLike, frame_size: tuple[int, int], require_object: bool = True,
                     reader: Callable[[Path], np.ndarray] = read_mask) -> np.ndarray:
    """Read a mask of object ids for frames of ``frame_size`` (H, W): palette / grey / RGB ids,
    a 0/255 mask as object 1; resized (nearest) if needed; ids must be <= 254 (255 = void)."""
    path = Path(path)
    mask = reader(path)
    present = set(np.unique(mask).tolist())
    if present == {0, VOID_ID} or present == {VOID_ID}:
        mask = (mask == VOID_ID).astype(np.uint8)  # a binary 0/255 mask: one object
    ids = object_ids(mask)
    if ids and max(ids) > MAX_OBJECT_ID:
        raise InputError(f"{path}: object id {max(ids)} above {MAX_OBJECT_ID} (palette PNGs hold 1..254)")
    if require_object and not ids:
        raise InputError(f"{path}: the mask holds no object")
    return fit_mask(mask, frame_size, path).astype(np.uint8)


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
    """Semi-supervised video object segmentation with a DeAOT or an S2S / S2S++ model.

    Args:
        model: variant name (``deaot-t``, ``s2spp-mnv2`` ...) or a network
            (:class:`~vosuite.models.deaot.DeAOT`, :class:`~vosuite.models.s2s.S2S`).
        checkpoint: weights (vosuite or aot-benchmark format); default: the packaged weights.
        size: internal resolution; None = the size the weights were trained for
            (``model.default_size``), else the model's default. DeAOT: the short side is shrunk to
            <= size before the model's size rule (default: that rule alone); S2S: the short side is
            scaled to size (default 256), sides rounded to multiples of 32
            (:func:`~vosuite.inference.s2s.s2s_input_size`). Outputs are at the input's resolution.
        threads: torch threads (default: every core, never more).
        long_term_gap: DeAOT: long-term memory every N frames (default: the model's).
        max_memory_frames: DeAOT: cap on long-term memory frames (reference frames kept).
            S2S has no frame memory (a fixed-size state per object): a gap or a cap other than
            the default is an InputError.
        merge: S2S: how objects are merged, ``"soft"`` (default, AOT / STM soft aggregation) or
            ``"rs2s"`` (argmax against a constant 0.5 background); an InputError for DeAOT.
        progress: draw progress bars (on a terminal).
        console: where reports go (default: stdout).
    """

    def __init__(self, model: str | DeAOT | S2S | None = None, checkpoint: str | os.PathLike | None = None,
                 size: int | None = None, threads: int | None = None, long_term_gap: int | None = None,
                 max_memory_frames: int | None = DEFAULT_MAX_LONG_TERM_FRAMES, progress: bool = True,
                 console: Console | None = None, merge: str | None = None) -> None:
        self.threads = set_threads(threads)
        if isinstance(model, (DeAOT, S2S)):
            self.model = model.eval()
        else:
            self.model = load_model(model if model is not None or checkpoint is not None else DEFAULT_MODEL,
                                    checkpoint)
        self.family = model_family(self.model)
        name = self.model.cfg.name
        self.memory: MemoryConfig | None = None
        if self.family == "deaot":
            if merge is not None:
                raise InputError(f"--merge applies to S2S models only; {name} merges objects its own way")
            self.memory = MemoryConfig.for_model(self.model.cfg, long_term_gap=long_term_gap,
                                                 max_long_term_frames=max_memory_frames)
        elif long_term_gap is not None or max_memory_frames != DEFAULT_MAX_LONG_TERM_FRAMES:
            raise InputError(f"--long-term-gap and --max-memory-frames apply to DeAOT models only; {name} keeps "
                             "one fixed-size recurrent state per object, no frame memory")
        elif merge is not None and merge not in MERGES:
            raise InputError(f"unknown merge {merge!r}; known: {', '.join(MERGES)}")
        self.merge = merge or MERGES[0]
        self.size = size if size is not None else getattr(self.model, "default_size", None)
        self._new_core(size)  # validates size early
        self.progress = progress
        self.console = console or Console()

    def core(self) -> VideoCore:
        """A fresh per-video state for the frame-by-frame API: ``core.step(rgb, mask)``
        (:class:`~vosuite.inference.core.InferenceCore` or :class:`~vosuite.inference.s2s.S2SInferenceCore`)."""
        return self._new_core(self.size)

    def _new_core(self, size: int | None) -> VideoCore:
        if self.family == "s2s":
            return S2SInferenceCore(self.model, size, self.merge)
        return InferenceCore(self.model, self.memory, size)

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
        first = read_prompt_mask(first_mask, frames.size)
        later = self._later_masks(masks_dir, frames.names)
        out = Path(out_dir)
        prepare_output(out, overwrite)
        core = self.core()
        total = frames.num_frames
        started = time.perf_counter()
        with self._overlay(overlay, frames.fps) as draw, \
                self._progress("segmenting", self.progress) as update:
            for frame in frames:
                if frame.index == 0:
                    mask = first
                elif frame.name in later:
                    mask = read_prompt_mask(later.pop(frame.name), frames.size, require_object=False)
                else:
                    mask = None
                core.step(frame.rgb, mask)
                labels = core.labels
                write_mask(out / f"{frame.name}.png", labels)
                if draw is not None:
                    draw.write(frame.rgb, labels)
                elapsed = time.perf_counter() - started
                update(frame.index + 1, total or frame.index + 1, f"{(frame.index + 1) / elapsed:.1f} fps")
        if later:
            names = ", ".join(sorted(str(p.name) for p in later.values()))
            self.console.print(f"warning: masks for no frame of {source} were not used: {names}")
        return SegmentReport(frames=core.frames_seen, seconds=time.perf_counter() - started,
                             peak_memory_mib=peak_memory_mib(), objects=len(core.object_ids), out=out)

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

    @staticmethod
    @contextlib.contextmanager
    def _overlay(path: str | os.PathLike | None, fps: float | None) -> Iterator[OverlayWriter | None]:
        if path is None:
            yield None
            return
        with OverlayWriter(path, fps=fps or 24.0) as writer:
            yield writer

    # -- datasets -----------------------------------------------------------------------------

    def infer(self, dataset: str, root: str | os.PathLike, out_dir: str | os.PathLike,
              split: str | os.PathLike | None = None, overwrite: bool = False) -> SegmentReport:
        """Predict every frame of every selected video: ``<out_dir>/<video>/<frame>.png``.

        The objects of the first annotated frame are followed (DAVIS: the first frame only, the
        semi-supervised protocol); for YouTube-VOS and generic folders every object starts at the
        first frame that annotates it (its mask there is merged in, as aot-benchmark does). Frames
        before the first annotation come out as background.
        """
        videos = open_dataset(dataset, root, split)
        out = Path(out_dir)
        prepare_output(out, overwrite)
        names = videos.videos()
        frames = objects = 0
        started = time.perf_counter()
        with self._progress("videos", self.progress) as update:
            for index, video in enumerate(videos):
                done, found = self._infer_video(video, out / video.name, dataset.lower().startswith("davis"))
                frames += done
                objects += found
                elapsed = time.perf_counter() - started
                update(index + 1, len(names), f"{frames / elapsed:.1f} fps")
        return SegmentReport(frames=frames, seconds=time.perf_counter() - started,
                             peak_memory_mib=peak_memory_mib(), objects=objects, out=out)

    def _infer_video(self, video: VideoRecord, out: Path, first_frame_only: bool) -> tuple[int, int]:
        prompts = _video_prompts(video, first_frame_only)
        if not prompts:
            raise InputError(f"video {video.name!r}: no annotated object to follow")
        core = self.core()
        count = 0
        for name, rgb in _video_frames(video):
            mask = None
            if name in prompts:
                path, ids = prompts[name]
                mask = read_prompt_mask(path, rgb.shape[:2], require_object=False, reader=video.read_labels)
                if ids is not None:
                    mask = np.where(np.isin(mask, ids), mask, 0).astype(np.uint8)
            core.step(rgb, mask)
            write_mask(out / f"{name}.png", core.labels)
            count += 1
        if not core.object_ids:
            raise InputError(f"video {video.name!r}: the annotations hold no object to follow")
        return count, len(core.object_ids)


def _video_prompts(video: VideoRecord, first_frame_only: bool) -> dict[str, tuple[Path, list[int] | None]]:
    """Frame name -> (mask file, ids that start there; None = every id in the mask)."""
    if not video.annotation_paths:
        return {}
    if first_frame_only:
        first = video.annotated_frames[0]
        return {first: (video.annotation_paths[first], None)}
    starts: dict[str, list[int]] = {}
    for object_id, frame in video.object_first_frames().items():
        if frame not in video.annotation_paths:
            raise InputError(f"video {video.name!r}: object {object_id} starts at frame {frame!r}, "
                             "which has no annotation")
        starts.setdefault(frame, []).append(object_id)
    return {frame: (video.annotation_paths[frame], sorted(ids)) for frame, ids in starts.items()}


def _video_frames(video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
    """(frame name, RGB) of a dataset video, one decoded frame at a time."""
    if video.video_file is not None:
        for frame, name in zip(open_frames(video.video_file), video.frame_names, strict=False):
            yield name, frame.rgb
        return
    for name, path in zip(video.frame_names, video.frame_paths, strict=True):
        yield name, read_image_rgb(path)
