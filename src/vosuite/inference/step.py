"""The pure DeAOT step: one frame in, probabilities, labels and new memory out.

    memory = start_memory(model, img0, label0, obj_num, config)         # reference frame
    result = deaot_step(model, img_t, memory, config, output_size)      # every later frame
    result.prob, result.label, memory = ..., ..., result.memory

Semantics follow aot-benchmark's ``DeAOTInferEngine`` and its evaluator (no flip, one scale):

* one *group* per ``max_obj_num`` (10) objects; each group has its own long/short-term memory
  and ID assignment (objects ``10 g + 1 .. 10 g + 10`` are ids 1..10 of group ``g``); the image
  features are shared; several groups are merged by :func:`~vosuite.inference.merge.aggregate_groups`;
* memory rules (gap, skip, cap): :mod:`vosuite.inference.memory`;
* objects can be added at any frame: the new objects' mask is merged into the prediction, the
  frame becomes a reference frame of every group (prepended to the long-term memory, the
  short-term memory restarts from it) and groups are created as needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vosuite.errors import InputError
from vosuite.inference.backend import DeAOTBackend
from vosuite.inference.memory import DeAOTMemory, GroupMemory, MemoryConfig, remember_frame, remember_reference
from vosuite.inference.merge import aggregate_groups, group_label, group_sizes, overwrite_with_given
from vosuite.inference.preprocess import resize_label
from vosuite.models.deaot import DeAOT
from vosuite.nn.gpm import LayerCurrent


@dataclass(frozen=True)
class StepResult:
    """Output of :func:`deaot_step`: probabilities [1, 1+K, H, W] (channel k = object k), the label
    map [1, 1, H, W] (long, ids 0..K), the new memory, and each group's raw stride-4 decoder
    logits [1, num_ids, h/4, w/4] (before masking and resizing)."""

    prob: torch.Tensor
    label: torch.Tensor
    memory: DeAOTMemory
    logits: tuple[torch.Tensor, ...] = ()


def reference_group(model: DeAOT, feats: list[torch.Tensor], label: torch.Tensor, obj_num: int,
                    frame_step: int, previous: GroupMemory | None, config: MemoryConfig) -> GroupMemory:
    """A group's memory after making the frame a reference: the frame is propagated against itself
    with the label's IDs (``label`` [1, 1, H, W] at the input size, group ids) and remembered as a
    reference frame (:func:`~vosuite.inference.memory.remember_reference`)."""
    id_emb = model.id_embedding(model.one_hot(label))
    _, _, own = model.propagate(feats[-1], ref_id_emb=id_emb)
    return remember_reference(previous, own, obj_num, frame_step, tuple(feats[-1].shape[-2:]), config)


def memorize_group(model: DeAOT, group: GroupMemory, current: list[LayerCurrent], label: torch.Tensor,
                   frame_step: int, size_2d: tuple[int, int], config: MemoryConfig) -> GroupMemory:
    """The group's memory after the current frame (propagated: ``current``) got ``label``
    [1, 1, H, W] (input size, group ids) (:func:`~vosuite.inference.memory.remember_frame`)."""
    frame = model.memory_from_current(current, model.id_embedding(model.one_hot(label)))
    return remember_frame(group, frame, frame_step, size_2d, config)


def start_memory(model: DeAOT, img: torch.Tensor, label: torch.Tensor, obj_num: int,
                 config: MemoryConfig, backend: DeAOTBackend | None = None) -> DeAOTMemory:
    """Memory of a video whose reference frame is ``img`` [1, 3, H, W] (normalised) with ``label``
    [1, 1, H, W] (ids 0..obj_num, any number of objects, at the input size); ``backend`` encodes
    the frame (default: the network, :mod:`vosuite.inference.backend`)."""
    if obj_num < 1:
        raise InputError("the reference mask holds no object")
    if tuple(label.shape[-2:]) != tuple(img.shape[-2:]):
        raise InputError(f"reference label {tuple(label.shape[-2:])} and image {tuple(img.shape[-2:])} "
                         "sizes differ")
    feats = (backend or model).encode_image(img)
    max_obj = model.cfg.max_obj_num
    sizes = group_sizes(obj_num, max_obj)
    groups = tuple(reference_group(model, feats, group_label(label, g, max_obj, len(sizes)), n, 0, None, config)
                   for g, n in enumerate(sizes))
    return DeAOTMemory(groups=groups, input_size=(img.shape[-2], img.shape[-1]),
                       size_2d=tuple(feats[-1].shape[-2:]), frame_step=0)


def deaot_step(model: DeAOT, img: torch.Tensor, memory: DeAOTMemory, config: MemoryConfig,
               output_size: tuple[int, int] | None = None, new_objects: torch.Tensor | None = None,
               backend: DeAOTBackend | None = None) -> StepResult:
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
        backend: runs encode / propagate / decode (default: the network itself).
    """
    graphs = backend or model
    if tuple(img.shape[-2:]) != memory.input_size:
        raise InputError(f"frame size {tuple(img.shape[-2:])} differs from the reference {memory.input_size}")
    out_size = tuple(output_size) if output_size is not None else memory.input_size
    frame_step = memory.frame_step + 1
    feats = graphs.encode_image(img)
    currents, logits = [], []
    for group in memory.groups:
        outputs, current, _ = graphs.propagate(feats[-1], group.long_term.layers, group.attended_short_term)
        currents.append(current)
        logits.append(graphs.decode(outputs, feats))
    prob, label = aggregate_groups(logits, [group.obj_num for group in memory.groups], out_size,
                                   model.cfg.align_corners)
    if new_objects is None:
        groups = _remember_prediction(model, memory, currents, label, frame_step, config)
    else:
        prob, label = overwrite_with_given(prob, label, new_objects)
        groups = _remember_references(model, memory, feats, label, max(memory.obj_num, int(new_objects.max())),
                                      frame_step, config)
    return StepResult(prob=prob, label=label, memory=replace(memory, groups=groups, frame_step=frame_step),
                      logits=tuple(logits))


def _remember_prediction(model: DeAOT, memory: DeAOTMemory, currents: list[list[LayerCurrent]],
                         label: torch.Tensor, frame_step: int, config: MemoryConfig) -> tuple[GroupMemory, ...]:
    """Every group's memory after the frame got the predicted ``label`` (output size)."""
    mem_label = resize_label(label, memory.input_size)
    count, max_obj = len(memory.groups), model.cfg.max_obj_num
    return tuple(memorize_group(model, group, current, group_label(mem_label, g, max_obj, count), frame_step,
                                memory.size_2d, config)
                 for g, (group, current) in enumerate(zip(memory.groups, currents, strict=True)))


def _remember_references(model: DeAOT, memory: DeAOTMemory, feats: list[torch.Tensor], label: torch.Tensor,
                         obj_num: int, frame_step: int, config: MemoryConfig) -> tuple[GroupMemory, ...]:
    """Every group's memory (new groups created) after the frame became a reference with ``label``."""
    mem_label = resize_label(label, memory.input_size)
    max_obj = model.cfg.max_obj_num
    sizes = group_sizes(obj_num, max_obj)
    return tuple(reference_group(model, feats, group_label(mem_label, g, max_obj, len(sizes)), n, frame_step,
                                 memory.groups[g] if g < len(memory.groups) else None, config)
                 for g, n in enumerate(sizes))
