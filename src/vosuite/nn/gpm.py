"""Gated Propagation Module with decoupled visual / ID branches (DeAOT paper, Sec. 3).

Each layer keeps two token streams of width ``d`` (=256): the visual embedding ``x`` and the
identification embedding ``x_id``. Matching (attention weights) is computed only from the visual
branch; both branches are propagated with the same weights by concatenating their values
("Hierarchical Dual-branch Propagation"). Per layer:

1. Long-term + short-term propagation. From ``LN(x)``: ``[Q | V] = linear_QV``, ``V = SiLU(V)``,
   gate ``U = linear_U``. Memory keys are the memory frames' ``Q``, memory values
   ``[V | V_id]`` with ``V_id = SiLU(linear_ID_V([LN(x_id)] | id_emb))``. The gate is
   ``[SiLU(U) | 1]`` in the first layer (no ID branch yet) and ``SiLU([U | linear_ID_U(LN(x_id))])``
   later. Outputs of the global (long-term memory) and local (previous frame, 15x15 window)
   propagation are summed and added residually to both branches.
2. Self-propagation over ``[LN(x) | LN(x_id)]`` (global gated propagation with its own
   projections), added residually to both branches.

``DualBranchGPM`` stacks layers and applies a GroupNorm(2 groups) over ``[x | x_id]`` to the
final output. Parameter names follow aot-benchmark (``LSTT.layers.<i>...``,
``LSTT.decoder_norms.<i>.gn``).

``attention="deformable"`` swaps the long- and short-term attention for the Gated Deformable
Attention of Truong et al. (arXiv 2401.13937, Sec. 3, Fig. 2b-c), see
:mod:`vosuite.nn.deformable_attention`; everything else (and every vanilla parameter name) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vosuite.nn.attention import GatedPropagation, LocalGatedPropagation, seq_to_2d, silu
from vosuite.nn.deformable_attention import (
    DeformableConfig,
    GatedDeformablePropagation,
    LocalGatedDeformablePropagation,
    OffsetNetwork,
)

__all__ = ["DualBranchGPM", "GatedPropagationLayer", "LayerCurrent", "LayerMemory", "PropagationAttention",
           "seq_to_2d"]

#: Values of the ``attention`` switch.
ATTENTION_KINDS = ("vanilla", "deformable")


@dataclass
class LayerMemory:
    """One layer's memory: keys [M, N, d_att*H], values and ID values [M, N, expand_d]
    (long-term, token layout) or [N, C, h, w] maps (short-term)."""

    key: torch.Tensor
    value: torch.Tensor
    id_value: torch.Tensor

    def to_2d(self, size_2d: tuple[int, int]) -> LayerMemory:
        """Token layout [h*w, N, C] -> short-term map layout [N, C, h, w]."""
        return LayerMemory(seq_to_2d(self.key, size_2d), seq_to_2d(self.value, size_2d),
                           seq_to_2d(self.id_value, size_2d))


@dataclass
class PropagationAttention:
    """Attention weights of one layer's memory propagation (kept only on request, e.g. for the
    attention-map distillation of arXiv 2401.13937 Sec. 4)."""

    long_term: torch.Tensor  # [N, H, hw, K]: K = T*hw (vanilla) or T*ceil(h/s)*ceil(w/s) (deformable)
    short_term: torch.Tensor  # [N, H, (2r+1)^2, hw] local window weights


@dataclass
class LayerCurrent:
    """What one layer computed for the current frame and needs to turn it into memory later:
    its key/value and the ID-branch input ``LN(x_id)`` (None in the first layer); plus its
    attention weights when they were requested."""

    key: torch.Tensor  # [hw, N, d_att*H]
    value: torch.Tensor  # [hw, N, expand_d]
    id_input: torch.Tensor | None  # [hw, N, d] or None
    attention: PropagationAttention | None = None


class GroupNormSeq(nn.Module):
    """GroupNorm over the channels of a token sequence [L, N, C] (parameter prefix ``gn``)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(x.permute(1, 2, 0)).permute(2, 0, 1)


def memory_attention(attention: str, d_model: int, heads: int, d_att: int, expand_ratio: float,
                     max_local_dis: int, deform: DeformableConfig | None) -> tuple[nn.Module, nn.Module]:
    """The (long-term, short-term) propagation modules of one layer for ``attention``."""
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
    d_vu = d_model * 2
    if attention == "vanilla":
        return (GatedPropagation(d_model, d_vu, heads, use_linear=False, d_att=d_att, expand_ratio=expand_ratio),
                LocalGatedPropagation(d_model, d_vu, heads, max_dis=max_local_dis, d_att=d_att,
                                      expand_ratio=expand_ratio))
    deform = deform or DeformableConfig()
    local = LocalGatedDeformablePropagation if deform.short_term else LocalGatedPropagation
    local_kwargs = {"deform": deform} if deform.short_term else {}
    return (GatedDeformablePropagation(d_model, d_vu, heads, d_att=d_att, expand_ratio=expand_ratio, deform=deform),
            local(d_model, d_vu, heads, max_dis=max_local_dis, d_att=d_att, expand_ratio=expand_ratio, **local_kwargs))


class GatedPropagationLayer(nn.Module):
    """One DeAOT propagation layer (see module docstring). ``layer_idx`` 0 has no ID input.
    ``attention``: "vanilla" (DeAOT) or "deformable" (Gated Deformable Attention, ``deform``)."""

    def __init__(self, d_model: int = 256, self_heads: int = 1, att_heads: int = 1, layer_idx: int = 0,
                 expand_ratio: float = 2.0, max_local_dis: int = 7, attention: str = "vanilla",
                 deform: DeformableConfig | None = None) -> None:
        super().__init__()
        self.deformable = attention == "deformable"
        self.d_model = d_model
        self.layer_idx = layer_idx
        self.att_heads = att_heads
        self.expand_d = int(d_model * expand_ratio)
        self.d_att = d_model // 2 if att_heads == 1 else d_model // att_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.linear_QV = nn.Linear(d_model, self.d_att * att_heads + self.expand_d)
        self.linear_U = nn.Linear(d_model, self.expand_d)
        if layer_idx == 0:
            self.linear_ID_V = nn.Linear(d_model, self.expand_d)
        else:
            self.id_norm1 = nn.LayerNorm(d_model)
            self.linear_ID_V = nn.Linear(d_model * 2, self.expand_d)
            self.linear_ID_U = nn.Linear(d_model, self.expand_d)
        self.long_term_attn, self.short_term_attn = memory_attention(
            attention, d_model, att_heads, self.d_att, expand_ratio, max_local_dis, deform)
        self.norm2 = nn.LayerNorm(d_model)
        self.id_norm2 = nn.LayerNorm(d_model)
        self.self_attn = GatedPropagation(d_model * 2, d_model * 2, self_heads, d_att=self.d_att)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, OffsetNetwork):
                m.zero_offsets()  # offsets start at exactly zero (after the xavier pass above)

    def id_value(self, id_input: torch.Tensor | None, id_emb: torch.Tensor) -> torch.Tensor:
        """Memory ID values ``SiLU(linear_ID_V([id_input |] id_emb))``: [L, N, expand_d]."""
        x = id_emb if id_input is None else torch.cat([id_input, id_emb], dim=2)
        return silu(self.linear_ID_V(x))

    def forward(
        self,
        x: torch.Tensor,
        x_id: torch.Tensor | None,
        size_2d: tuple[int, int],
        long_term: LayerMemory | None = None,
        short_term: LayerMemory | None = None,
        ref_id_emb: torch.Tensor | None = None,
        return_attn: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, LayerCurrent, LayerMemory | None]:
        """x, x_id [hw, N, d]. Either pass memories (``long_term`` tokens, ``short_term`` maps), or
        ``ref_id_emb`` [hw, N, d] to propagate a reference frame against itself.
        ``return_attn`` keeps the memory attention weights in ``LayerCurrent.attention``.

        Returns (x, x_id, current-frame key/value, the frame's own memory when ``ref_id_emb``).
        """
        normed = self.norm1(x)
        q, v = torch.split(self.linear_QV(normed), [self.d_att * self.att_heads, self.expand_d], dim=2)
        v = silu(v)  # [hw, N, expand_d]
        u = self.linear_U(normed)
        if x_id is None:
            id_input = None
            gate = torch.cat([silu(u), torch.ones_like(u)], dim=-1)  # [hw, N, 2*expand_d]
        else:
            id_input = self.id_norm1(x_id)
            gate = silu(torch.cat([u, self.linear_ID_U(id_input)], dim=-1))
        own_memory = None
        if ref_id_emb is not None:
            id_v = self.id_value(id_input, ref_id_emb)
            long_term = LayerMemory(q, v, id_v)
            short_term = LayerMemory(seq_to_2d(q, size_2d), seq_to_2d(v, size_2d), seq_to_2d(id_v, size_2d))
            own_memory = long_term
        if long_term is None or short_term is None:
            raise ValueError("pass either both memories or ref_id_emb")
        if self.deformable:  # sampled part by part: no copy of the whole long-term memory
            global_v = (long_term.value, long_term.id_value)
        else:
            global_v = torch.cat([long_term.value, long_term.id_value], dim=-1)  # [M, N, 2*expand_d]
        local_v = torch.cat([short_term.value, short_term.id_value], dim=1)  # [N, 2*expand_d, h, w]
        out_lt, attn_lt = self.long_term_attn.propagate(q, long_term.key, global_v, gate, size_2d,
                                                        return_attn)  # [hw, N, 2d]
        del global_v
        out_st, attn_st = self.short_term_attn.propagate(seq_to_2d(q, size_2d), short_term.key, local_v, gate,
                                                         size_2d, return_attn)
        lt, lt_id = torch.split(out_lt, self.d_model, dim=-1)
        st, st_id = torch.split(out_st, self.d_model, dim=-1)
        x = x + (lt + st)
        x_id = (lt_id + st_id) if x_id is None else x_id + (lt_id + st_id)
        both = torch.cat([self.norm2(x), self.id_norm2(x_id)], dim=-1)  # [hw, N, 2d]
        out = self.self_attn(both, both, both, both, size_2d)
        sa, sa_id = torch.split(out, self.d_model, dim=-1)
        attention = PropagationAttention(attn_lt, attn_st) if return_attn else None
        return x + sa, x_id + sa_id, LayerCurrent(q, v, id_input, attention), own_memory


class DualBranchGPM(nn.Module):
    """Stack of :class:`GatedPropagationLayer` with GroupNorm(2) output norms ("LSTT" in checkpoints).

    ``forward`` returns the per-layer outputs ``[x | x_id]`` ([hw, N, 2d]); the last one is
    normalised, earlier ones only when ``intermediate_norm``.
    """

    def __init__(self, num_layers: int = 1, d_model: int = 256, self_heads: int = 1, att_heads: int = 1,
                 intermediate_norm: bool = False, expand_ratio: float = 2.0, max_local_dis: int = 7,
                 attention: str = "vanilla", deform: DeformableConfig | None = None) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.intermediate_norm = intermediate_norm
        self.layers = nn.ModuleList(
            GatedPropagationLayer(d_model, self_heads, att_heads, i, expand_ratio, max_local_dis, attention, deform)
            for i in range(num_layers)
        )
        num_norms = num_layers if intermediate_norm else 1
        self.decoder_norms = nn.ModuleList(GroupNormSeq(d_model * 2, 2) for _ in range(num_norms))

    def forward(
        self,
        x: torch.Tensor,
        size_2d: tuple[int, int],
        long_term: list[LayerMemory] | None = None,
        short_term: list[LayerMemory] | None = None,
        ref_id_emb: torch.Tensor | None = None,
        return_attn: bool = False,
    ) -> tuple[list[torch.Tensor], list[LayerCurrent], list[LayerMemory]]:
        """x [hw, N, d] -> (outputs per layer [hw, N, 2d], current key/values, own memories).
        ``return_attn``: keep each layer's memory attention weights in ``LayerCurrent.attention``."""
        outputs, currents, own = [], [], []
        x_id = None
        for i, layer in enumerate(self.layers):
            x, x_id, current, memory = layer(
                x, x_id, size_2d,
                None if long_term is None else long_term[i],
                None if short_term is None else short_term[i],
                ref_id_emb,
                return_attn,
            )
            outputs.append(torch.cat([x, x_id], dim=2))
            currents.append(current)
            if memory is not None:
                own.append(memory)
        outputs[-1] = self.decoder_norms[-1](outputs[-1])
        if self.intermediate_norm:
            for i in range(len(outputs) - 1):
                outputs[i] = self.decoder_norms[i](outputs[i])
        return outputs, currents, own
