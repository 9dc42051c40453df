"""aot-benchmark's training propagation of a clip (``networks/engines/aot_engine.py``, ``forward``
with ``enable_prev_frame=False``), returning a structured :class:`ClipOutput`.

* every frame of the clip is encoded at once; the first is the reference: it is propagated
  against itself with its identities, which gives the long-term memory and the first short-term
  memory, and (on request) its own prediction for the auxiliary loss;
* every later frame is propagated against the memories and decoded; after each frame but the
  last, the frame becomes memory with the ground-truth identities (teacher forcing) or the
  network's own argmax prediction, through the same update rule as inference
  (:func:`vosuite.inference.memory.remember_frame`: short-term memory, a long-term frame every
  ``long_term_gap`` frames, the cap on long-term frames);
* identities can be shuffled per clip (a permutation of ids 1..max_obj_num, background kept) and
  detached (``freeze_id``, sequential training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vosuite.inference.memory import GroupMemory, MemoryConfig, remember_frame, remember_reference
from vosuite.inference.merge import argmax_channels
from vosuite.models.deaot import DeAOT
from vosuite.nn.gpm import PropagationAttention


@dataclass(frozen=True)
class ClipPlan:
    """How one clip is propagated."""

    teacher_forcing: bool = True  # GT (True) or the prediction (False) becomes short-term memory
    memory: MemoryConfig = MemoryConfig()  # gap, skip (1) and cap, as at inference
    with_aux: bool = True  # decode the reference frame's own prediction (auxiliary loss)
    with_attention: bool = False  # keep every layer's memory attention of frames 1..T-1


@dataclass(frozen=True)
class ClipOutput:
    """What the clip forward computed.

    Attributes:
        reference_logits: the reference frame's own stride-4 logits [B, C, H/4, W/4] (None without aux).
        logits: stride-4 logits of frames 1..T-1, real id order, dead ids masked.
        attention: per frame 1..T-1, per GPM layer, the memory attention
            (:class:`~vosuite.nn.gpm.PropagationAttention`); None unless requested.
        memory: the memory after frame T-2 (what the last frame attended to).
    """

    reference_logits: torch.Tensor | None
    logits: list[torch.Tensor]
    attention: list[list[PropagationAttention]] | None
    memory: GroupMemory


def shuffle_matrices(indices: list[int], num_ids: int, seed: int) -> torch.Tensor:
    """[B, C, C] permutation matrices (background fixed), one per sample, a function of (seed, index)
    only, so that the same sample is shuffled the same way on any rank (aot-benchmark
    ``generate_permute_matrix``)."""
    mats = []
    for index in indices:
        state = np.random.SeedSequence([seed, int(index)]).generate_state(1)[0]
        perm = torch.randperm(num_ids - 1, generator=torch.Generator().manual_seed(int(state))) + 1
        mats.append(torch.eye(num_ids)[torch.cat([torch.zeros(1, dtype=torch.long), perm])])
    return torch.stack(mats)


class ClipForward:
    """The training propagation of a clip ([B, T, 3, H, W]) with one DeAOT network (module docstring)."""

    def __init__(self, model: DeAOT, labels: torch.Tensor, obj_nums: list[int], shuffle: torch.Tensor | None,
                 freeze_id: bool) -> None:
        self.model, self.labels, self.obj_nums = model, labels, obj_nums
        self.shuffle = shuffle
        self.freeze_id = freeze_id
        live = torch.arange(model.cfg.num_ids, device=labels.device).view(1, -1) <= torch.tensor(
            obj_nums, device=labels.device).view(-1, 1)
        self.dead = ~live[:, :, None, None]  # [B, C, 1, 1]

    def identity(self, label: torch.Tensor) -> torch.Tensor:
        """ID embedding [hw, B, d] of a label map [B, 1, H, W] (shuffled; detached when freeze_id)."""
        one_hot = self.model.one_hot(label)
        if self.shuffle is not None:
            one_hot = torch.einsum("bohw,bot->bthw", one_hot, self.shuffle)
        emb = self.model.id_embedding(one_hot)
        return emb.detach() if self.freeze_id else emb

    def logits(self, outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> torch.Tensor:
        """Stride-4 logits in the real id order, ids above each sample's obj_num masked."""
        raw = self.model.decode(outputs, feats)
        if self.shuffle is not None:
            raw = torch.einsum("bohw,bto->bthw", raw, self.shuffle)
        return raw.masked_fill(self.dead, -1e10 if raw.dtype == torch.float32 else -1e4)

    def predicted_label(self, logits: torch.Tensor) -> torch.Tensor:
        """Argmax label [B, 1, H, W] at the input size (aot-benchmark ``predict_current_mask``)."""
        size = tuple(self.labels.shape[-2:])
        up = F.interpolate(logits.detach(), size=size, mode="bilinear", align_corners=self.model.cfg.align_corners)
        return argmax_channels(up)

    def run(self, frames: torch.Tensor, plan: ClipPlan) -> ClipOutput:
        """Propagate the clip: see :class:`ClipOutput`."""
        b, t = frames.shape[:2]
        all_feats = self.model.encode_image(frames.flatten(0, 1))
        feats = [[f.view(b, t, *f.shape[1:])[:, i] for f in all_feats] for i in range(t)]
        size_2d = tuple(feats[0][-1].shape[-2:])
        outputs, _, own = self.model.propagate(feats[0][-1], ref_id_emb=self.identity(self.labels[:, 0]))
        aux = self.logits(outputs, feats[0]) if plan.with_aux else None
        memory = remember_reference(None, own, max(self.obj_nums), 0, size_2d, plan.memory)
        results, attention = [], [] if plan.with_attention else None
        for i in range(1, t):
            outputs, current, _ = self.model.propagate(feats[i][-1], memory.long_term.layers,
                                                       memory.attended_short_term, return_attn=plan.with_attention)
            results.append(self.logits(outputs, feats[i]))
            if attention is not None:
                attention.append([layer.attention for layer in current])
            if i == t - 1:
                break
            label = self.labels[:, i] if plan.teacher_forcing else self.predicted_label(results[-1])
            frame = self.model.memory_from_current(current, self.identity(label))
            memory = remember_frame(memory, frame, i, size_2d, plan.memory)
        return ClipOutput(aux, results, attention, memory)
