"""DeAOT inference: explicit per-video memory state + a step-wise engine.

Mirrors aot-benchmark's ``DeAOTInferEngine`` evaluation sequence for one video (up to
``max_obj_num`` objects, one engine, no flip / multi-scale):

    state = engine.add_reference(img0, label0, obj_num)        # long- and short-term memory
    for each later frame:
        engine.propagate(state, img)                            # encoder + GPM stack
        logits = engine.decode(state, output_size=(H0, W0))     # FPN, unused ids -> -1e10, bilinear
        label = argmax(softmax(logits))                         # [1, 1, H0, W0]
        engine.update_memory(state, resize_label(label, input_size))

:meth:`DeAOTEngine.step` does the last four lines. Memory rules (as in AOT / aot-benchmark):
the long-term memory starts as the reference frame and gains the current frame (prepended)
whenever ``frame_step - last_mem_step >= long_term_mem_gap``; the short-term memory is the frame
``short_term_mem_skip`` steps back (1 = previous frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vosuite.errors import InputError
from vosuite.inference.preprocess import resize_label
from vosuite.models.deaot import DeAOT
from vosuite.nn.gpm import LayerCurrent, LayerMemory, seq_to_2d


@dataclass
class DeAOTState:
    """Everything one video needs between frames; holds tensors only, no modules."""

    obj_num: int
    input_size: tuple[int, int]  # network input (H, W), e.g. (481, 849)
    size_2d: tuple[int, int]  # stride-16 grid (h, w), e.g. (31, 54)
    pos_emb: torch.Tensor  # [h*w, N, d] sine embedding (kept for completeness; the GPM ignores it)
    long_term: list[LayerMemory]  # per layer: key [M, N, dk], value / id_value [M, N, dv]
    short_term_list: list[list[LayerMemory]]  # recent frames' 2-D memories, oldest first
    frame_step: int = 0
    last_mem_step: int = 0
    # the frame being processed (set by propagate, consumed by decode / update_memory)
    feats: list[torch.Tensor] | None = None
    outputs: list[torch.Tensor] | None = None
    current: list[LayerCurrent] | None = field(default=None, repr=False)

    @property
    def short_term(self) -> list[LayerMemory]:
        return self.short_term_list[0]

    @property
    def long_term_frames(self) -> int:
        hw = self.size_2d[0] * self.size_2d[1]
        return self.long_term[0].key.shape[0] // hw


def _to_2d(mem: LayerMemory, size_2d: tuple[int, int]) -> LayerMemory:
    return LayerMemory(seq_to_2d(mem.key, size_2d), seq_to_2d(mem.value, size_2d),
                       seq_to_2d(mem.id_value, size_2d))


def logits_to_label(logits: torch.Tensor, obj_num: int, size: tuple[int, int],
                    align_corners: bool = True) -> torch.Tensor:
    """Stride-4 ID logits [N, num_ids, h, w] -> label [N, 1, *size] (long).

    Same result as the reference (mask ids > obj_num with -1e10, bilinear-resize all channels,
    softmax, argmax) but only the ``obj_num + 1`` live channels are resized: the masked channels
    have probability exactly 0, add exact zeros to the softmax sums and can never be the argmax.
    """
    live = F.interpolate(logits[:, :obj_num + 1], size=tuple(size), mode="bilinear", align_corners=align_corners)
    prob = torch.softmax(live, dim=1)
    # argmax over a contiguous last dim is several times faster than over dim 1; ties -> first index
    return prob.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).unsqueeze(1)


class DeAOTEngine:
    """Stateless driver around a :class:`DeAOT` network; the state is a :class:`DeAOTState`."""

    def __init__(self, model: DeAOT, long_term_mem_gap: int | None = None,
                 short_term_mem_skip: int | None = None) -> None:
        self.model = model.eval()
        cfg = model.cfg
        self.long_term_mem_gap = cfg.long_term_mem_gap if long_term_mem_gap is None else long_term_mem_gap
        self.short_term_mem_skip = cfg.short_term_mem_skip if short_term_mem_skip is None else short_term_mem_skip

    @torch.no_grad()
    def add_reference(self, img: torch.Tensor, label: torch.Tensor, obj_num: int) -> DeAOTState:
        """img [1, 3, H, W] normalised; label [1, 1, H, W] (ids 0..obj_num, same H, W)."""
        if not 1 <= obj_num <= self.model.cfg.max_obj_num:
            raise InputError(f"{self.model.cfg.name} handles 1..{self.model.cfg.max_obj_num} objects, "
                             f"got {obj_num}")
        if tuple(label.shape[-2:]) != tuple(img.shape[-2:]):
            raise InputError(f"reference label {tuple(label.shape[-2:])} and image {tuple(img.shape[-2:])} "
                             "sizes differ")
        model = self.model
        feats = model.encode_image(img)
        h, w = feats[-1].shape[-2:]
        id_emb = model.id_embedding(model.one_hot(label))
        outputs, current, own = model.propagate(feats[-1], ref_id_emb=id_emb)
        return DeAOTState(
            obj_num=obj_num,
            input_size=(img.shape[-2], img.shape[-1]),
            size_2d=(h, w),
            pos_emb=model.position_embedding(feats[-1]),
            long_term=own,
            short_term_list=[[_to_2d(m, (h, w)) for m in own]],
            feats=feats,
            outputs=outputs,
            current=current,
        )

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
        model = self.model
        id_emb = model.id_embedding(model.one_hot(label))
        memory = model.memory_from_current(state.current, id_emb)
        state.short_term_list.append([_to_2d(m, state.size_2d) for m in memory])
        state.short_term_list = state.short_term_list[-self.short_term_mem_skip:]
        if state.frame_step - state.last_mem_step >= self.long_term_mem_gap:
            state.long_term = [
                LayerMemory(torch.cat([new.key, old.key]), torch.cat([new.value, old.value]),
                            torch.cat([new.id_value, old.id_value]))
                for new, old in zip(memory, state.long_term, strict=True)
            ]
            state.last_mem_step = state.frame_step
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
