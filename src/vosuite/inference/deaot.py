"""DeAOT inference: memory as explicit tensors, pure step functions, and a step-wise engine.

The math of one video lives in pure functions: they take the network, the frame's tensors and
the memory (frozen dataclasses of tensors) and return new memory, never modifying their inputs,
so that a step can later be traced / exported as ``(frame, memory tensors) -> (output, memory
tensors)``:

    memory = start_memory(model, img0, label0, obj_num, config)         # reference frame
    result = deaot_step(model, img_t, memory, config, output_size)      # every later frame
    result.prob, result.label, memory = ..., ..., result.memory

Semantics follow aot-benchmark's ``DeAOTInferEngine`` and its evaluator (no flip, one scale):

* one *group* per ``max_obj_num`` (10) objects; each group has its own long/short-term memory
  and ID assignment (objects ``10 g + 1 .. 10 g + 10`` are ids 1..10 of group ``g``); the image
  features are shared; several groups are merged with the original's soft aggregation (per
  group softmax, background = product of the groups' background probabilities, foreground
  probabilities side by side, clamped to ``[1e-5, 1 - 1e-5]``, then logit and softmax);
* short-term memory: the frame ``short_term_skip`` steps back (1 = previous frame);
* long-term memory: the reference frame(s), plus the current frame (prepended) whenever
  ``frame_step - last_mem_step >= long_term_gap``; vosuite adds a cap,
  ``max_long_term_frames``: when it is exceeded the oldest non-reference frames are dropped
  (reference frames are always kept), so memory is bounded for any video length;
* objects can be added at any frame: the new objects' mask is merged into the prediction, the
  frame becomes a reference frame of every group (prepended to the long-term memory, the
  short-term memory restarts from it) and groups are created as needed.

:class:`DeAOTEngine` is the older step-wise interface (one group) on top of the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from vosuite.errors import InputError
from vosuite.inference.preprocess import resize_label
from vosuite.models.deaot import DeAOT, DeAOTConfig
from vosuite.nn.gpm import LayerCurrent, LayerMemory

#: Default cap on long-term memory frames (reference frames included, never dropped).
DEFAULT_MAX_LONG_TERM_FRAMES = 32
#: Probability clamp of aot-benchmark's soft aggregation of object groups.
_AGGREGATION_EPS = 1e-5


@dataclass(frozen=True)
class MemoryConfig:
    """Test-time memory rules.

    Attributes:
        long_term_gap: a frame joins the long-term memory every ``long_term_gap`` frames
            (aot-benchmark ``TEST_LONG_TERM_MEM_GAP``; 9999 = reference frames only).
        short_term_skip: the short-term memory is the frame this many steps back.
        max_long_term_frames: most frames in the long-term memory; None = unbounded (the
            original's behaviour). Reference frames are never dropped.
    """

    long_term_gap: int = 9999
    short_term_skip: int = 1
    max_long_term_frames: int | None = DEFAULT_MAX_LONG_TERM_FRAMES

    def __post_init__(self) -> None:
        if self.long_term_gap < 1 or self.short_term_skip < 1:
            raise InputError("long-term gap and short-term skip must be >= 1")
        if self.max_long_term_frames is not None and self.max_long_term_frames < 1:
            raise InputError("the long-term memory cap must be >= 1 frame")

    @classmethod
    def for_model(cls, cfg: DeAOTConfig, long_term_gap: int | None = None, short_term_skip: int | None = None,
                  max_long_term_frames: int | None = DEFAULT_MAX_LONG_TERM_FRAMES) -> MemoryConfig:
        """The model's defaults (``cfg.long_term_mem_gap`` / ``short_term_mem_skip``) with overrides."""
        return cls(cfg.long_term_mem_gap if long_term_gap is None else long_term_gap,
                   cfg.short_term_mem_skip if short_term_skip is None else short_term_skip,
                   max_long_term_frames)


@dataclass(frozen=True)
class GroupMemory:
    """The memory of one group of <= ``max_obj_num`` objects (one ID bank).

    Attributes:
        obj_num: objects of this group (ids 1..obj_num inside the group).
        long_term: per layer, tokens of the stored frames, newest frame first:
            key [F*hw, 1, d_att*heads], value / id_value [F*hw, 1, expand_d].
        long_term_refs: per stored frame, newest first: True for reference frames.
        short_term: the last ``short_term_skip`` frames' per-layer 2-D memories
            ([1, C, h, w]), oldest first; ``short_term[0]`` is the one attended to.
        last_mem_step: frame step of the last long-term addition.
    """

    obj_num: int
    long_term: tuple[LayerMemory, ...]
    long_term_refs: tuple[bool, ...]
    short_term: tuple[tuple[LayerMemory, ...], ...]
    last_mem_step: int

    @property
    def long_term_frames(self) -> int:
        return len(self.long_term_refs)


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
            for layer in group.long_term:
                out += [layer.key, layer.value, layer.id_value]
            for frame in group.short_term:
                for layer in frame:
                    out += [layer.key, layer.value, layer.id_value]
        return out


@dataclass(frozen=True)
class StepResult:
    """Output of :func:`deaot_step`: probabilities [1, 1+K, H, W] (channel k = object k),
    the label map [1, 1, H, W] (long, ids 0..K) and the new memory."""

    prob: torch.Tensor
    label: torch.Tensor
    memory: DeAOTMemory


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def group_sizes(obj_num: int, max_obj_num: int) -> list[int]:
    """Objects per group: 23 objects with a bank of 10 -> [10, 10, 3]."""
    full, rest = divmod(obj_num, max_obj_num)
    return [max_obj_num] * full + ([rest] if rest else [])


def separate_label(label: torch.Tensor, group: int, max_obj_num: int) -> torch.Tensor:
    """Ids ``10 g + 1 .. 10 g + 10`` of ``label`` renumbered 1..10, everything else 0 (float)."""
    start = group * max_obj_num + 1
    inside = (label >= start) & (label <= start + max_obj_num - 1)
    return torch.where(inside, label - (start - 1), torch.zeros_like(label)).float()


def _cap_long_term(long_term: tuple[LayerMemory, ...], refs: tuple[bool, ...], hw: int,
                   cap: int | None) -> tuple[tuple[LayerMemory, ...], tuple[bool, ...]]:
    """Drop the oldest non-reference frames until at most ``cap`` frames remain."""
    if cap is None or len(refs) <= cap:
        return long_term, refs
    keep = list(range(len(refs)))
    for index in reversed(range(len(refs))):  # oldest first
        if len(keep) <= cap:
            break
        if not refs[index]:
            keep.remove(index)
    if len(keep) == len(refs):
        return long_term, refs
    frames = torch.tensor(keep)

    def select(x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1:]
        return x.view(len(refs), hw, n, c)[frames].reshape(len(keep) * hw, n, c)

    capped = tuple(LayerMemory(select(m.key), select(m.value), select(m.id_value)) for m in long_term)
    return capped, tuple(refs[i] for i in keep)


def reference_group(model: DeAOT, feats: list[torch.Tensor], label: torch.Tensor, obj_num: int,
                    frame_step: int, previous: GroupMemory | None, config: MemoryConfig) -> GroupMemory:
    """A group's memory after making the frame a reference: its memory (from propagating the frame
    against itself with the label's IDs, ``label`` [1, 1, H, W] at the input size, group ids)
    is prepended to the long-term memory, and the short-term memory restarts from it."""
    id_emb = model.id_embedding(model.one_hot(label))
    _, _, own = model.propagate(feats[-1], ref_id_emb=id_emb)
    size_2d = tuple(feats[-1].shape[-2:])
    if previous is None:
        long_term, refs = tuple(own), (True,)
    else:
        long_term = tuple(LayerMemory(torch.cat([new.key, old.key]), torch.cat([new.value, old.value]),
                                      torch.cat([new.id_value, old.id_value]))
                          for new, old in zip(own, previous.long_term, strict=True))
        refs = (True, *previous.long_term_refs)
        long_term, refs = _cap_long_term(long_term, refs, size_2d[0] * size_2d[1], config.max_long_term_frames)
    short = tuple(m.to_2d(size_2d) for m in own)
    return GroupMemory(obj_num=obj_num, long_term=long_term, long_term_refs=refs, short_term=(short,),
                       last_mem_step=frame_step)


def memorize_group(model: DeAOT, group: GroupMemory, current: list[LayerCurrent], label: torch.Tensor,
                   frame_step: int, size_2d: tuple[int, int], config: MemoryConfig) -> GroupMemory:
    """The group's memory after the current frame (propagated: ``current``) got ``label``
    [1, 1, H, W] (input size, group ids): new short-term memory; long-term addition every
    ``long_term_gap`` frames, then the cap."""
    id_emb = model.id_embedding(model.one_hot(label))
    memory = model.memory_from_current(current, id_emb)
    short = (*group.short_term, tuple(m.to_2d(size_2d) for m in memory))[-config.short_term_skip:]
    long_term, refs, last = group.long_term, group.long_term_refs, group.last_mem_step
    if frame_step - group.last_mem_step >= config.long_term_gap:
        long_term = tuple(LayerMemory(torch.cat([new.key, old.key]), torch.cat([new.value, old.value]),
                                      torch.cat([new.id_value, old.id_value]))
                          for new, old in zip(memory, group.long_term, strict=True))
        refs = (False, *refs)
        last = frame_step
        long_term, refs = _cap_long_term(long_term, refs, size_2d[0] * size_2d[1], config.max_long_term_frames)
    return GroupMemory(obj_num=group.obj_num, long_term=long_term, long_term_refs=refs, short_term=short,
                       last_mem_step=last)


def logits_to_label(logits: torch.Tensor, obj_num: int, size: tuple[int, int],
                    align_corners: bool = True) -> torch.Tensor:
    """Stride-4 ID logits [N, num_ids, h, w] -> label [N, 1, *size] (long).

    Same result as the reference (mask ids > obj_num with -1e10, bilinear-resize all channels,
    softmax, argmax) but only the ``obj_num + 1`` live channels are resized: the masked channels
    have probability exactly 0, add exact zeros to the softmax sums and can never be the argmax.
    """
    return _single_group_prob(logits, obj_num, size, align_corners)[1]


def _argmax_channels(prob: torch.Tensor) -> torch.Tensor:
    # argmax over a contiguous last dim is several times faster than over dim 1; ties -> first index
    return prob.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).unsqueeze(1)


def _single_group_prob(logits: torch.Tensor, obj_num: int, size: tuple[int, int],
                       align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    live = F.interpolate(logits[:, :obj_num + 1], size=tuple(size), mode="bilinear", align_corners=align_corners)
    prob = torch.softmax(live, dim=1)
    return prob, _argmax_channels(prob)


def aggregate_groups(logits: list[torch.Tensor], obj_nums: list[int], size: tuple[int, int],
                     align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group stride-4 logits -> (probabilities [1, 1+K, *size], label [1, 1, *size]).

    One group: softmax of the live channels (exactly the original). Several: aot-benchmark's
    ``soft_logit_aggregation`` followed by the evaluator's softmax and argmax; the masked (dead)
    channels are left out, which changes no argmax (their clamped probability 1e-5 is the
    minimum, and background, channel 0, wins any tie at that value).
    """
    if len(logits) == 1:
        return _single_group_prob(logits[0], obj_nums[0], size, align_corners)
    backgrounds, foregrounds = [], []
    for raw, n in zip(logits, obj_nums, strict=True):
        prob = _single_group_prob(raw, n, size, align_corners)[0]
        backgrounds.append(prob[:, :1])
        foregrounds.append(prob[:, 1:])
    prob = soft_aggregate(torch.cat(backgrounds, dim=1), torch.cat(foregrounds, dim=1))
    return prob, _argmax_channels(prob)


def soft_aggregate(backgrounds: torch.Tensor, foregrounds: torch.Tensor, eps: float = _AGGREGATION_EPS
                   ) -> torch.Tensor:
    """The soft aggregation of STM / aot-benchmark (``soft_logit_aggregation``): independent
    estimates merged into one distribution by their odds.

    ``backgrounds`` [N, G, H, W]: G independent background probabilities (their product is the
    merged background); ``foregrounds`` [N, K, H, W]: the objects' probabilities. The merged
    channels are clamped to ``[eps, 1 - eps]``, turned into log-odds and soft-maxed: returns
    [N, 1 + K, H, W] summing to 1 over dim 1 (channel 0 the background).
    """
    background = torch.prod(backgrounds, dim=1, keepdim=True)
    merged = torch.cat([background, foregrounds], dim=1).clamp(eps, 1 - eps)
    return torch.softmax(torch.logit(merged), dim=1)


def start_memory(model: DeAOT, img: torch.Tensor, label: torch.Tensor, obj_num: int,
                 config: MemoryConfig) -> DeAOTMemory:
    """Memory of a video whose reference frame is ``img`` [1, 3, H, W] (normalised) with ``label``
    [1, 1, H, W] (ids 0..obj_num, any number of objects, at the input size)."""
    if obj_num < 1:
        raise InputError("the reference mask holds no object")
    if tuple(label.shape[-2:]) != tuple(img.shape[-2:]):
        raise InputError(f"reference label {tuple(label.shape[-2:])} and image {tuple(img.shape[-2:])} "
                         "sizes differ")
    feats = model.encode_image(img)
    max_obj = model.cfg.max_obj_num
    groups = tuple(reference_group(model, feats, separate_label(label, g, max_obj) if obj_num > max_obj else label,
                                   n, 0, None, config)
                   for g, n in enumerate(group_sizes(obj_num, max_obj)))
    return DeAOTMemory(groups=groups, input_size=(img.shape[-2], img.shape[-1]),
                       size_2d=tuple(feats[-1].shape[-2:]), frame_step=0)


def deaot_step(model: DeAOT, img: torch.Tensor, memory: DeAOTMemory, config: MemoryConfig,
               output_size: tuple[int, int] | None = None, new_objects: torch.Tensor | None = None) -> StepResult:
    """One frame: encode, propagate every group, decode, aggregate, then update the memory.

    Args:
        model: the network (eval mode; call under ``torch.no_grad()``).
        img: [1, 3, H, W] normalised, at ``memory.input_size``.
        memory: the memory after the previous frame (not modified).
        config: memory rules.
        output_size: (H0, W0) of the probabilities and labels (default: the input size).
        new_objects: optional [1, 1, H0, W0] ids of objects that start here (ids > ``obj_num``,
            or existing ids to correct them); 0 elsewhere. They overwrite the prediction and
            the frame becomes a reference frame.

    Returns:
        :class:`StepResult` with the new memory.
    """
    if tuple(img.shape[-2:]) != memory.input_size:
        raise InputError(f"frame size {tuple(img.shape[-2:])} differs from the reference {memory.input_size}")
    out_size = tuple(output_size) if output_size is not None else memory.input_size
    frame_step = memory.frame_step + 1
    feats = model.encode_image(img)
    max_obj = model.cfg.max_obj_num
    currents, logits = [], []
    for group in memory.groups:
        outputs, current, _ = model.propagate(feats[-1], group.long_term, group.short_term[0])
        currents.append(current)
        logits.append(model.decode(outputs, feats))
    obj_nums = [group.obj_num for group in memory.groups]
    prob, label = aggregate_groups(logits, obj_nums, out_size, model.cfg.align_corners)
    several = len(memory.groups) > 1
    if new_objects is None:
        mem_label = resize_label(label, memory.input_size)
        groups = tuple(
            memorize_group(model, group, current, separate_label(mem_label, g, max_obj) if several else mem_label,
                           frame_step, memory.size_2d, config)
            for g, (group, current) in enumerate(zip(memory.groups, currents, strict=True)))
    else:
        new_objects = new_objects.to(label.dtype)
        label = torch.where(new_objects > 0, new_objects, label)
        obj_num = max(memory.obj_num, int(new_objects.max()))
        if obj_num > prob.shape[1] - 1:
            prob = torch.cat([prob, prob.new_zeros(1, obj_num + 1 - prob.shape[1], *prob.shape[2:])], dim=1)
        given = (new_objects > 0).expand_as(prob)
        one_hot = (torch.arange(obj_num + 1).view(1, -1, 1, 1) == label).to(prob.dtype)
        prob = torch.where(given, one_hot, prob)
        mem_label = resize_label(label, memory.input_size)
        sizes = group_sizes(obj_num, max_obj)
        groups = tuple(
            reference_group(model, feats, separate_label(mem_label, g, max_obj) if len(sizes) > 1 else mem_label,
                            n, frame_step, memory.groups[g] if g < len(memory.groups) else None, config)
            for g, n in enumerate(sizes))
    return StepResult(prob=prob, label=label, memory=replace(memory, groups=groups, frame_step=frame_step))


# ---------------------------------------------------------------------------------------------
# Step-wise engine (one group, <= max_obj_num objects)
# ---------------------------------------------------------------------------------------------


@dataclass
class DeAOTState:
    """One video's state for :class:`DeAOTEngine`: the group memory plus the frame in flight."""

    obj_num: int
    input_size: tuple[int, int]
    size_2d: tuple[int, int]
    pos_emb: torch.Tensor  # [h*w, N, d] sine embedding (kept for completeness; the GPM ignores it)
    memory: GroupMemory
    frame_step: int = 0
    # the frame being processed (set by propagate, consumed by decode / update_memory)
    feats: list[torch.Tensor] | None = None
    outputs: list[torch.Tensor] | None = None
    current: list[LayerCurrent] | None = None

    @property
    def long_term(self) -> tuple[LayerMemory, ...]:
        return self.memory.long_term

    @property
    def short_term(self) -> tuple[LayerMemory, ...]:
        return self.memory.short_term[0]

    @property
    def last_mem_step(self) -> int:
        return self.memory.last_mem_step

    @property
    def long_term_frames(self) -> int:
        return self.memory.long_term_frames


class DeAOTEngine:
    """Step-wise driver (aot-benchmark call sequence) around a :class:`DeAOT` network and the pure
    functions above; the state is a :class:`DeAOTState`.

        state = engine.add_reference(img0, label0, obj_num)
        engine.propagate(state, img); logits = engine.decode(state, (H0, W0))
        engine.update_memory(state, resize_label(argmax(logits), input_size))
    """

    def __init__(self, model: DeAOT, long_term_mem_gap: int | None = None,
                 short_term_mem_skip: int | None = None,
                 max_long_term_frames: int | None = DEFAULT_MAX_LONG_TERM_FRAMES) -> None:
        self.model = model.eval()
        self.config = MemoryConfig.for_model(model.cfg, long_term_mem_gap, short_term_mem_skip, max_long_term_frames)

    @property
    def long_term_mem_gap(self) -> int:
        return self.config.long_term_gap

    @property
    def short_term_mem_skip(self) -> int:
        return self.config.short_term_skip

    @torch.no_grad()
    def add_reference(self, img: torch.Tensor, label: torch.Tensor, obj_num: int) -> DeAOTState:
        """img [1, 3, H, W] normalised; label [1, 1, H, W] (ids 0..obj_num, same H, W)."""
        if not 1 <= obj_num <= self.model.cfg.max_obj_num:
            raise InputError(f"{self.model.cfg.name} handles 1..{self.model.cfg.max_obj_num} objects, "
                             f"got {obj_num}")
        if tuple(label.shape[-2:]) != tuple(img.shape[-2:]):
            raise InputError(f"reference label {tuple(label.shape[-2:])} and image {tuple(img.shape[-2:])} "
                             "sizes differ")
        feats = self.model.encode_image(img)
        memory = reference_group(self.model, feats, label, obj_num, 0, None, self.config)
        return DeAOTState(obj_num=obj_num, input_size=(img.shape[-2], img.shape[-1]),
                          size_2d=tuple(feats[-1].shape[-2:]), pos_emb=self.model.position_embedding(feats[-1]),
                          memory=memory, feats=feats)

    @torch.no_grad()
    def propagate(self, state: DeAOTState, img: torch.Tensor) -> None:
        """Encode ``img`` [1, 3, H, W] and propagate the memories to it (advances frame_step)."""
        if tuple(img.shape[-2:]) != state.input_size:
            raise InputError(f"frame size {tuple(img.shape[-2:])} differs from the reference {state.input_size}")
        state.frame_step += 1
        state.feats = self.model.encode_image(img)
        state.outputs, state.current, _ = self.model.propagate(state.feats[-1], state.long_term, state.short_term)

    @torch.no_grad()
    def decode(self, state: DeAOTState, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        """ID logits of the current frame: [1, num_ids, H/4, W/4], or bilinearly resized
        (align_corners per config) to ``output_size``. Ids above ``obj_num`` are set to -1e10."""
        if state.outputs is None or state.feats is None:
            raise RuntimeError("propagate() a frame first")
        logits = self.model.decode(state.outputs, state.feats)
        logits[:, state.obj_num + 1:] = -1e10 if logits.dtype == torch.float32 else -1e4
        if output_size is not None:
            logits = F.interpolate(logits, size=tuple(output_size), mode="bilinear",
                                   align_corners=self.model.cfg.align_corners)
        return logits

    @torch.no_grad()
    def update_memory(self, state: DeAOTState, label: torch.Tensor) -> None:
        """Turn the current frame into memory using ``label`` [1, 1, H, W] at the input size."""
        if state.current is None:
            raise RuntimeError("propagate() a frame first")
        state.memory = memorize_group(self.model, state.memory, state.current, label, state.frame_step,
                                      state.size_2d, self.config)
        state.current = None

    @torch.no_grad()
    def step(self, state: DeAOTState, img: torch.Tensor, output_size: tuple[int, int] | None = None,
             return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """propagate -> decode -> softmax -> argmax -> update memory. Returns the label
        [1, 1, *output_size] (long) and, if asked, the raw stride-4 logits."""
        self.propagate(state, img)
        out_size = tuple(output_size) if output_size is not None else state.input_size
        raw = self.decode(state)
        label = logits_to_label(raw, state.obj_num, out_size, self.model.cfg.align_corners)
        self.update_memory(state, resize_label(label, state.input_size))
        return (label, raw) if return_logits else label
