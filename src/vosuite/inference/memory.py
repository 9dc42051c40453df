"""DeAOT memory as explicit tensors, and the one rule that updates it (inference *and* training).

Semantics follow aot-benchmark's ``DeAOTInferEngine`` (and its training engine, which applies the
same rule to a batch of clips):

* short-term memory: the frame ``short_term_skip`` steps back (1 = the previous frame);
* long-term memory: the reference frame(s), plus the current frame (prepended, newest first)
  whenever ``frame_step - last_mem_step >= long_term_gap``; vosuite adds a cap,
  ``max_memory_frames``: when it is exceeded the oldest non-reference frames are dropped
  (reference frames are always kept), so memory is bounded for any video length. The same cap
  applies in training (:class:`vosuite.training.methods.deaot.clip_forward.ClipForward`).

Every function here is pure: it returns new memory and never modifies its inputs, so that a step
can be traced / exported as ``(frame, memory tensors) -> (output, memory tensors)``. Memory of any
batch size N works (inference: N = 1 per group; training: N = clips of the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vosuite.errors import InputError
from vosuite.models.deaot import DeAOTConfig
from vosuite.nn.gpm import LayerMemory
from vosuite.options import DEFAULT_MAX_MEMORY_FRAMES


@dataclass(frozen=True)
class MemoryConfig:
    """Memory rules.

    Attributes:
        long_term_gap: a frame joins the long-term memory every ``long_term_gap`` frames
            (aot-benchmark ``TEST_LONG_TERM_MEM_GAP`` / ``TRAIN_LONG_TERM_MEM_GAP``; 9999 = reference
            frames only).
        short_term_skip: the short-term memory is the frame this many steps back.
        max_memory_frames: most frames in the long-term memory; None = unbounded (the
            original's behaviour). Reference frames are never dropped.
    """

    long_term_gap: int = 9999
    short_term_skip: int = 1
    max_memory_frames: int | None = DEFAULT_MAX_MEMORY_FRAMES

    def __post_init__(self) -> None:
        if self.long_term_gap < 1 or self.short_term_skip < 1:
            raise InputError("long-term gap and short-term skip must be >= 1")
        if self.max_memory_frames is not None and self.max_memory_frames < 1:
            raise InputError("the long-term memory cap must be >= 1 frame")

    @classmethod
    def for_model(cls, cfg: DeAOTConfig, long_term_gap: int | None = None, short_term_skip: int | None = None,
                  max_memory_frames: int | None = DEFAULT_MAX_MEMORY_FRAMES) -> MemoryConfig:
        """The model's defaults (``cfg.long_term_mem_gap`` / ``short_term_mem_skip``) with overrides."""
        return cls(cfg.long_term_mem_gap if long_term_gap is None else long_term_gap,
                   cfg.short_term_mem_skip if short_term_skip is None else short_term_skip,
                   max_memory_frames)


@dataclass(frozen=True)
class LongTermMemory:
    """Per layer, the tokens of the stored frames, newest frame first: key [F*hw, N, d_att*heads],
    value / id_value [F*hw, N, expand_d]; ``refs[i]`` is True when frame i is a reference frame."""

    layers: tuple[LayerMemory, ...]
    refs: tuple[bool, ...]

    @property
    def frames(self) -> int:
        return len(self.refs)


@dataclass(frozen=True)
class GroupMemory:
    """The memory of one group of <= ``max_obj_num`` objects (one ID bank).

    Attributes:
        obj_num: objects of this group (ids 1..obj_num inside the group).
        long_term: the stored frames (:class:`LongTermMemory`).
        short_term: the last ``short_term_skip`` frames' per-layer 2-D memories
            ([N, C, h, w]), oldest first; ``short_term[0]`` is the one attended to.
        last_mem_step: frame step of the last long-term addition.
    """

    obj_num: int
    long_term: LongTermMemory
    short_term: tuple[tuple[LayerMemory, ...], ...]
    last_mem_step: int

    @property
    def long_term_frames(self) -> int:
        return self.long_term.frames

    @property
    def attended_short_term(self) -> tuple[LayerMemory, ...]:
        """The short-term memory the next frame attends to."""
        return self.short_term[0]


@dataclass(frozen=True)
class DeAOTMemory:
    """Everything one video carries from frame to frame (tensors + a few integers)."""

    groups: tuple[GroupMemory, ...]
    input_size: tuple[int, int]  # network input (H, W), e.g. (481, 849)
    size_2d: tuple[int, int]  # stride-16 grid (h, w), e.g. (31, 54)
    frame_step: int = 0

    @property
    def obj_num(self) -> int:
        return sum(group.obj_num for group in self.groups)

    @property
    def long_term_frames(self) -> int:
        return max(group.long_term_frames for group in self.groups)

    def tensors(self) -> list[torch.Tensor]:
        """Every memory tensor, in a fixed order (groups, long-term then short-term, per layer)."""
        out: list[torch.Tensor] = []
        for group in self.groups:
            for layer in group.long_term.layers:
                out += [layer.key, layer.value, layer.id_value]
            for frame in group.short_term:
                for layer in frame:
                    out += [layer.key, layer.value, layer.id_value]
        return out


def cap_long_term(memory: LongTermMemory, hw: int, cap: int | None) -> LongTermMemory:
    """Drop the oldest non-reference frames until at most ``cap`` frames remain (reference frames
    are always kept, so more than ``cap`` may remain when they alone exceed it)."""
    refs = memory.refs
    if cap is None or len(refs) <= cap:
        return memory
    keep = list(range(len(refs)))
    for index in reversed(range(len(refs))):  # oldest first
        if len(keep) <= cap:
            break
        if not refs[index]:
            keep.remove(index)
    if len(keep) == len(refs):
        return memory
    frames = torch.tensor(keep)

    def select(x: torch.Tensor) -> torch.Tensor:  # [F*hw, N, C] -> [F'*hw, N, C]
        n, c = x.shape[1:]
        return x.view(len(refs), hw, n, c)[frames].reshape(len(keep) * hw, n, c)

    layers = tuple(LayerMemory(select(m.key), select(m.value), select(m.id_value)) for m in memory.layers)
    return LongTermMemory(layers, tuple(refs[i] for i in keep))


def start_long_term(frame: Sequence[LayerMemory]) -> LongTermMemory:
    """The long-term memory of a first reference frame (token layout, per layer)."""
    return LongTermMemory(tuple(frame), (True,))


def prepend_long_term(memory: LongTermMemory, frame: Sequence[LayerMemory], reference: bool, hw: int,
                      cap: int | None) -> LongTermMemory:
    """``frame`` (per-layer token memories) stored as the newest long-term frame, then the cap."""
    layers = tuple(LayerMemory(torch.cat([new.key, old.key]), torch.cat([new.value, old.value]),
                               torch.cat([new.id_value, old.id_value]))
                   for new, old in zip(frame, memory.layers, strict=True))
    return cap_long_term(LongTermMemory(layers, (reference, *memory.refs)), hw, cap)


def remember_frame(group: GroupMemory, frame: Sequence[LayerMemory], frame_step: int, size_2d: tuple[int, int],
                   config: MemoryConfig) -> GroupMemory:
    """The group's memory after a (non-reference) frame whose per-layer memory is ``frame``: it
    becomes the newest short-term memory, and joins the long-term memory every
    ``config.long_term_gap`` frames (then the cap applies)."""
    short = (*group.short_term, tuple(m.to_2d(size_2d) for m in frame))[-config.short_term_skip:]
    long_term, last = group.long_term, group.last_mem_step
    if frame_step - group.last_mem_step >= config.long_term_gap:
        long_term = prepend_long_term(long_term, frame, False, size_2d[0] * size_2d[1],
                                      config.max_memory_frames)
        last = frame_step
    return GroupMemory(obj_num=group.obj_num, long_term=long_term, short_term=short, last_mem_step=last)


def remember_reference(previous: GroupMemory | None, frame: Sequence[LayerMemory], obj_num: int, frame_step: int,
                       size_2d: tuple[int, int], config: MemoryConfig) -> GroupMemory:
    """The group's memory after making a frame (per-layer memory ``frame``) a reference frame: it
    is prepended to the long-term memory (the cap applies) and the short-term memory restarts
    from it."""
    if previous is None:
        long_term = start_long_term(frame)
    else:
        long_term = prepend_long_term(previous.long_term, frame, True, size_2d[0] * size_2d[1],
                                      config.max_memory_frames)
    short = tuple(m.to_2d(size_2d) for m in frame)
    return GroupMemory(obj_num=obj_num, long_term=long_term, short_term=(short,), last_mem_step=frame_step)
