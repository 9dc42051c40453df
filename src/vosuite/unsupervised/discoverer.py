"""Unsupervised object discovery in a video: ``vosuite discover`` and :class:`Discoverer`
(Betrayed by Attention, Ding et al. 2023; the clustering: :mod:`vosuite.unsupervised.clustering`).

    from vosuite import Discoverer
    for index, labels in Discoverer(checkpoint="bba.pt").discover("clip.mp4"):
        ...                                  # labels: [H, W] uint8 proposal ids 1..K, stable over the video

No mask is given: the frozen DINO ViT's last-block keys of every frame go through the trained
spatio-temporal block's attention and are clustered into proposals. The video is streamed three
times (frames are decoded again, never held): pass 1 encodes the key frames (every ``ratio``-th
frame, from frame 0), pass 2 every frame's queries in windows of 3 frames for the first level of
the clustering, pass 3 the same windows for the assignment. Memory holds the key frames' keys, one
window's distributions and the centroids, never the whole video's features. Unlike the original,
every frame gets a mask (the original drops the last frame) and key frames run to the end of the
video (the original stops at the last multiple of ``ratio`` below T).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from vosuite.distributed import resolve_device
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.inference.propagate import Video, video_frames
from vosuite.io.frames import open_frames
from vosuite.io.masks import write_mask
from vosuite.io.output import prepare_output
from vosuite.io.overlay import claimed_overlay
from vosuite.models.baseline import TrainingFreeTracker
from vosuite.models.bba import BetrayedByAttention
from vosuite.options import DEFAULT_DISCOVER_MODEL
from vosuite.progress import progress_bar
from vosuite.registry import get_spec
from vosuite.unsupervised.baselines import MotionSaliencyConfig, centred_ellipse, motion_saliency
from vosuite.unsupervised.clustering import (
    WINDOW,
    assign_window,
    border_and_area,
    first_level,
    foreground_proposal,
    merge_level,
    motion_proposal,
    window_distributions,
)

#: Default internal size (short side) of discovery on a CPU: 240 px gives 30 x 53 tokens at patch 8.
DEFAULT_DISCOVER_SIZE = 240
#: How the single-object output picks its foreground proposal (Discoverer's ``foreground``).
FOREGROUND_RULES = ("border", "motion")
#: The network a plain state dict passed as --checkpoint is read as (the original code's, ViT-S/8).
STATE_DICT_MODEL = "bba-vits8"


def network_size(height: int, width: int, size: int, patch: int) -> tuple[int, int]:
    """(h, w) of the ViT input: the short side scaled to ``size``, both sides floored to multiples of the patch."""
    scale = size / min(height, width)
    return max(patch, int(height * scale) // patch * patch), max(patch, int(width * scale) // patch * patch)


@dataclass(frozen=True)
class DiscoveryReport:
    frames: int
    proposals: int
    seconds: float
    out: Path | None

    def summary(self) -> str:
        return (f"discovered {self.proposals} proposals in {self.frames} frames in {self.seconds:.1f} s"
                + (f"; masks in {self.out}" if self.out else ""))


class Discoverer:
    """Object discovery with a Betrayed-by-Attention model (module docstring).

    Args:
        model: a registered ``bba-*`` name, or a :class:`~vosuite.models.bba.BetrayedByAttention`;
            or an unsupervised training-free baseline, ``ellipse`` or ``motion-saliency``
            (:mod:`vosuite.unsupervised.baselines`; no weights, ``tau`` / ``ratio`` unused).
            None: the model ``checkpoint`` holds, else ``bba-vits8``.
        checkpoint: its weights (a vosuite checkpoint of the bba family).
        tau: the clustering's distance threshold (smaller: more, finer proposals); None: the
            model's (``cfg.tau``: the original's 1.0 for the DINO models, tuned on train for others).
        ratio: every ``ratio``-th frame is a key frame (the original: 10).
        foreground: how :meth:`single_object` picks the foreground proposal: ``"border"`` (the
            proposal that touches the frame border least) or ``"motion"`` (the one that best
            overlaps the motion-saliency map; measured in docs/benchmarks.md).
        size: internal short side (default: the checkpoint's, else 240).
        device: where the networks run.
    """

    def __init__(self, model: str | BetrayedByAttention | None = None, checkpoint: str | os.PathLike | None = None,
                 tau: float | None = None, ratio: int = 10, size: int | None = None, device: str = "cpu",
                 progress: bool = True, console: Console | None = None, foreground: str = "border") -> None:
        if model is None and checkpoint is None:
            model = DEFAULT_DISCOVER_MODEL
        elif model is None and not _holds_a_vosuite_model(checkpoint):
            model = STATE_DICT_MODEL
        if isinstance(model, (BetrayedByAttention, TrainingFreeTracker)):
            self.model = model
        elif isinstance(model, str) and get_spec(model).family == "baseline":
            self.model = create_model(model, weights=checkpoint)  # a path is refused: baselines take none
        else:
            self.model = create_model(model, weights=checkpoint if checkpoint is not None else "default")
        self.baseline = isinstance(self.model, TrainingFreeTracker)
        if self.baseline and self.model.cfg.task != "unsupervised":
            raise InputError(f"{self.model.cfg.name} follows given masks: run it with `vosuite segment` or `infer`")
        if not self.baseline and (not isinstance(self.model, BetrayedByAttention) or not self.model.cfg.has_backbone):
            raise InputError(f"{checkpoint or model}: not a Betrayed-by-Attention model with its backbone")
        if foreground not in FOREGROUND_RULES:
            raise InputError(f"--foreground {foreground!r}: use {' or '.join(FOREGROUND_RULES)}")
        self.foreground_rule = foreground
        if tau is None:
            tau = self.model.cfg.tau if not self.baseline else 1.0
        if not tau > 0 or ratio < 1:
            raise InputError(f"--tau must be positive and --ratio >= 1 (got {tau}, {ratio})")
        if size is not None and size < 1:
            raise InputError(f"--size {size}: must be a positive number of pixels")
        device = str(resolve_device(device))
        self.model = self.model.to(device).eval()
        self.tau, self.ratio, self.device = tau, ratio, device
        self.size = size or self.model.default_size or DEFAULT_DISCOVER_SIZE
        self.progress = progress
        self.console = console or Console()

    # -- features -------------------------------------------------------------------------------------
    @torch.no_grad()
    def keys(self, rgb: np.ndarray) -> torch.Tensor:
        """One frame's backbone tokens [C, h, w] (a ViT's last-block keys, or CNN features)."""
        patch = self.model.stride
        h, w = network_size(*rgb.shape[:2], self.size, patch)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255.0
        image = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return self.model.encode(self.model.normalize(image).to(self.device))[0][0]

    def queries(self, keys: torch.Tensor) -> torch.Tensor:
        """Per-frame keys [C, h, w] -> the block's queries [heads, hw, d] (norm1 + qkv only)."""
        block = self.model.block
        tokens = block.norm1(keys.flatten(1).t()[None])  # [1, hw, C]
        return block.attn.heads(tokens, "q")[0]

    def key_tokens(self, keys: torch.Tensor) -> torch.Tensor:
        block = self.model.block
        return block.attn.heads(block.norm1(keys.flatten(1).t()[None]), "k")[0]  # [heads, hw, d]

    # -- the three passes -----------------------------------------------------------------------------
    def _windows(self, video: Video, key_tokens: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """(first frame, distributions) of every window of ``WINDOW`` frames, the video decoded anew."""
        scale, batch, start = self.model.block.attn.scale, [], 0
        for index, rgb in enumerate(video_frames(video)):
            batch.append(self.queries(self.keys(rgb)))
            if len(batch) == WINDOW:
                yield start, window_distributions(torch.stack(batch), key_tokens, scale)
                batch, start = [], index + 1
        if batch:
            yield start, window_distributions(torch.stack(batch), key_tokens, scale)

    @torch.no_grad()
    def discover(self, video: Video) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, proposal ids [H, W] uint8)`` for every frame of ``video`` (a file, a
        frames folder, or a re-iterable sequence of RGB arrays: it is read three times)."""
        if self.baseline:
            yield from self._baseline_proposals(video)
            return
        keys, frames, frame_size, grid = [], 0, None, None
        for index, rgb in enumerate(video_frames(video)):  # pass 1: key frames
            frames, frame_size = index + 1, rgb.shape[:2]
            if index % self.ratio == 0:
                frame_keys = self.keys(rgb)
                grid = tuple(frame_keys.shape[-2:])
                keys.append(self.key_tokens(frame_keys))
        if frames < max(self.ratio, 2):
            raise InputError(f"{video}: {frames} frame(s); discovery needs at least {max(self.ratio, 2)} "
                             f"(one key frame every --ratio {self.ratio} frames)")
        key_tokens = torch.stack(keys)  # [K, heads, hw, d]
        centroids, _ = first_level(self._windows(video, key_tokens), self.tau)  # pass 2
        final, _ = merge_level(centroids, self.tau)
        self.proposals = len(final)
        for start, distributions in self._windows(video, key_tokens):  # pass 3
            for offset, label in enumerate(assign_window(distributions, final, grid)):
                yield start + offset, _upsample(label, frame_size)

    def _baseline_proposals(self, video: Video) -> Iterator[tuple[int, np.ndarray]]:
        """A training-free baseline's one proposal per frame (streamed, one pass)."""
        if self.model.cfg.kind == "ellipse":
            stream = (centred_ellipse(*rgb.shape[:2]) for rgb in video_frames(video))
        else:
            config = MotionSaliencyConfig(size=self.size, flow=self.model.cfg.flow)
            stream = motion_saliency(video_frames(video), config)
        self.proposals = 1
        yield from enumerate(stream)

    # -- files ----------------------------------------------------------------------------------------
    def single_object(self, video: Video) -> Iterator[tuple[int, np.ndarray]]:
        """DAVIS-2016 style output: one proposal picked as the foreground from a first pass over every
        frame's proposals, by ``foreground`` (``"border"``:
        :func:`~vosuite.unsupervised.clustering.foreground_proposal`; ``"motion"``: the proposal that
        best overlaps the motion-saliency map, :func:`~vosuite.unsupervised.clustering.motion_proposal`),
        yielded as 0/1 maps. The video is read six times (two discoveries; once more for the motion
        map); a training-free baseline's single proposal is the foreground (one pass)."""
        if self.baseline:
            self.foreground = 1
            yield from self.discover(video)
            return
        self.foreground = self._pick_foreground(video)
        for index, labels in self.discover(video):
            yield index, (labels == self.foreground).astype(np.uint8)

    def _pick_foreground(self, video: Video) -> int:
        """The id of the foreground proposal (:meth:`single_object`)."""
        counts: dict[str, dict[int, int]] = {"border": {}, "area": {}, "overlap": {}}
        moving = 0
        motion = (motion_saliency(video_frames(video), MotionSaliencyConfig(size=self.size))
                  if self.foreground_rule == "motion" else None)
        for _, labels in self.discover(video):
            edge, pixels = border_and_area(labels)
            _add(counts["border"], edge)
            _add(counts["area"], pixels)
            if motion is not None:
                region = next(motion).astype(bool)
                moving += int(region.sum())
                _add(counts["overlap"], border_and_area(np.where(region, labels, 0))[1])
        if motion is not None:
            return motion_proposal(counts["overlap"], counts["area"], moving)
        return foreground_proposal(counts["border"], counts["area"])

    def discover_to(self, video: str | os.PathLike, out_dir: str | os.PathLike,
                    overlay: str | os.PathLike | None = None, overwrite: bool = False,
                    single_object: bool = False) -> DiscoveryReport:
        """Write ``<out>/<frame>.png`` (palette PNGs of proposal ids, or with ``single_object`` 0/1
        masks of the picked foreground) for every frame, and an overlay video."""
        source = open_frames(video)
        names = source.names
        started, count = time.perf_counter(), 0
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(prepare_output(Path(out_dir), overwrite, (video,)))
            writer = stack.enter_context(claimed_overlay(overlay, source.fps, folder, overwrite, (video,)))
            update = stack.enter_context(progress_bar("discovering", self.progress))
            frames = iter(source)
            stream = self.single_object(video) if single_object else self.discover(video)
            for index, labels in stream:
                name = names[index] if names else f"{index:05d}"
                write_mask(folder.file(f"{name}.png"), labels)
                if writer is not None:
                    writer.write(next(frames).rgb, labels)
                count += 1
                update(count, source.num_frames or count)
        return DiscoveryReport(count, self.proposals, time.perf_counter() - started, folder.path)


def _upsample(label: torch.Tensor, frame_size: tuple[int, int]) -> np.ndarray:
    """Patch-grid ids [h, w] -> frame ids [H, W] (nearest, as the original's evaluation loader)."""
    up = F.interpolate(label[None, None].float(), size=tuple(frame_size), mode="nearest")
    return up[0, 0].numpy().astype(np.uint8)


def _holds_a_vosuite_model(checkpoint: str | os.PathLike) -> bool:
    """Whether ``checkpoint`` is a vosuite checkpoint (it names its own model)."""
    from vosuite.checkpoints.files import read_checkpoint
    from vosuite.checkpoints.vosuite_format import is_vosuite_checkpoint

    return is_vosuite_checkpoint(read_checkpoint(Path(checkpoint)))


def _add(total: dict[int, int], counts: dict[int, int]) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count
