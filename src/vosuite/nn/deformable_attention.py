"""Deformable attention over video memory and the Gated Deformable Propagation module.

Truong et al., "Self-supervised Video Object Segmentation with Distillation Learning of Deformable
Attention" (arXiv 2401.13937), Sec. 3 and Fig. 2b-c, replace the vanilla attention of DeAOT's
Gated Propagation Module by *deformable attention*: the keys and values read from memory sit at
flexible locations, predicted from the current frame, that can follow the object across frames.
The paper computes it in three steps, which this module implements in plain PyTorch following
DAT (Xia et al., "Vision Transformer with Deformable Attention", CVPR 2022, Sec. 3.2; reference
code LeapLabTHU/DAT ``models/dat_blocks.py``, ``DAttentionBaseline``) for the details the paper
leaves open:

1. **Reference points** (:func:`reference_points`): a uniform grid of ``ceil(h/s) x ceil(w/s)``
   points over the key/value map, at the centres of ``s x s`` cells (DAT: one point per
   ``stride`` cell). With stride 1 they are exactly the key pixels.
2. **Offsets** (:class:`OffsetNetwork`): a small conv net on the *query* feature map (paper:
   "convolutional layers with GELU"; DAT: depthwise ``k x k`` conv with stride ``s`` + LayerNorm +
   GELU + 1x1 conv to 2 channels, one offset field per channel group). Offsets are bounded by
   ``tanh`` to ``offset_range`` feature pixels per axis (DAT's ``offset_range_factor``) and the
   last conv is zero-initialised so a fresh module samples exactly at the reference points.
3. **Re-sampling** (:func:`sample_frames`): keys and values are bilinearly interpolated from memory
   at ``reference + offset`` (``grid_sample``, ``align_corners=True`` as in DAT), separately in
   every memory frame; then multi-head softmax attention between all queries and the sampled
   keys/values (:func:`deformable_attention`).

Sampling outside the map: a point is clamped to the map (``padding_mode="border"``), i.e. it
takes the feature of the nearest border location; its gradient w.r.t. the offset is then zero
along the clamped axis. (DAT pads with zeros; border keeps every sampled key a real feature,
which matters because DeAOT does not mask attention to memory.) A point can leave the map by at
most ``offset_range`` pixels.

Cost. Vanilla long-term attention over ``T`` memory frames costs ``O(hw * T * hw)``; with stride
``s`` the deformable version costs ``O(hw * T * hw / s^2)`` plus a bilinear gather of
``T * hw / s^2`` points, so it grows ``s^2`` times more slowly with memory size. No DAT-style
relative position bias is added: DeAOT's long-term attention has none (so vanilla weights keep
their meaning), and the short-term branch keeps DeAOT's learned per-window-slot bias.

Placement (the paper's *Gated Deformable Attention*): :class:`GatedDeformablePropagation`
replaces the long-term (memory) attention and :class:`LocalGatedDeformablePropagation` the
short-term attention of every GPM layer; both propagate the visual and the ID branch with the same
attention weights (DeAOT's dual-branch propagation), so both branches are deformed. The
self-propagation attends to the current frame's own tokens, not to memory, and stays vanilla.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vosuite.nn.attention import GatedPropagation, LocalGatedPropagation, attend, seq_to_2d


@dataclass(frozen=True)
class DeformableConfig:
    """Hyper-parameters of the deformable memory attention (our defaults; the paper gives none).

    Attributes:
        stride: long-term sampling stride ``s``: ``ceil(h/s) * ceil(w/s)`` points per memory frame
            (DAT ``stride``). 1 samples every key (then zero offsets = vanilla attention).
        groups: offset groups; heads are split evenly among them (DAT ``n_groups``).
        kernel_size: odd kernel of the offset network's depthwise conv (DAT ``ksize``).
        long_term_range: offset bound in feature pixels for the long-term memory; None = ``stride``
            (one sampling-grid step, DAT ``offset_range_factor`` 2), enough to reach every pixel.
        short_term_range: offset bound for the short-term memory; None = the local window radius,
            so the 15x15 window can follow motion of up to twice its radius.
        short_term: also deform the short-term attention (False keeps it vanilla).
    """

    stride: int = 4
    groups: int = 1
    kernel_size: int = 5
    long_term_range: float | None = None
    short_term_range: float | None = None
    short_term: bool = True

    def __post_init__(self) -> None:
        if self.stride < 1 or self.groups < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"invalid deformable attention settings: {self}")


def grid_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """Sampling grid (ceil(h/s), ceil(w/s)); also the output size of the offset network's conv."""
    return -(-height // stride), -(-width // stride)


def reference_points(height: int, width: int, stride: int, device: torch.device | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Step 1: [hk, wk, 2] (x, y) pixel coordinates of the centres of a uniform ``hk x wk`` cell grid
    over an ``h x w`` map (pixel-centre convention, 0 .. w-1). Stride 1 gives the pixels exactly."""
    hk, wk = grid_size(height, width, stride)
    return _cell_centres(torch.arange(hk, device=device, dtype=dtype), torch.arange(wk, device=device, dtype=dtype),
                         height / hk, width / wk)


def traced_reference_points(query_map: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """:func:`reference_points` from tensor ops only, so that a traced graph (ONNX export) computes
    the grid from its input's size: query_map [N, C, h, w], offsets [B, hk, wk, 2] -> [hk, wk, 2].
    Equal to :func:`reference_points` within float32 rounding of ``h / hk``."""
    rows = torch.ones_like(query_map[0, 0, :, 0]).sum()  # h
    cols = torch.ones_like(query_map[0, 0, 0, :]).sum()  # w
    grid_rows = torch.ones_like(offsets[0, :, 0, 0]).cumsum(0) - 1  # 0 .. hk-1
    grid_cols = torch.ones_like(offsets[0, 0, :, 0]).cumsum(0) - 1  # 0 .. wk-1
    return _cell_centres(grid_rows, grid_cols, rows / (grid_rows[-1] + 1), cols / (grid_cols[-1] + 1))


def _cell_centres(grid_rows: torch.Tensor, grid_cols: torch.Tensor, row_step, col_step) -> torch.Tensor:
    """(x, y) centres [hk, wk, 2] of cells ``row_step`` x ``col_step`` pixels at indices ``grid_rows`` [hk]
    and ``grid_cols`` [wk]."""
    ys = (grid_rows + 0.5) * row_step - 0.5
    xs = (grid_cols + 0.5) * col_step - 0.5
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")  # [hk, wk] each
    return torch.stack([grid_x, grid_y], dim=-1)


class OffsetNetwork(nn.Module):
    """Step 2: offsets from query features (paper Sec. 3: conv + GELU; layout of DAT's ``conv_offset``).

    ``dw_conv`` (depthwise k x k, stride s, padding k//2) -> LayerNorm over channels -> GELU ->
    ``proj`` (1x1 conv to (dx, dy), no bias, zero-initialised) -> ``tanh * offset_range``.
    One network is shared by all offset groups (each group's channels are a batch entry, as in DAT).
    """

    def __init__(self, channels: int, stride: int = 1, kernel_size: int = 5, offset_range: float = 1.0) -> None:
        super().__init__()
        self.offset_range = float(offset_range)
        self.dw_conv = nn.Conv2d(channels, channels, kernel_size, stride, kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Conv2d(channels, 2, kernel_size=1, bias=False)
        self.zero_offsets()

    def zero_offsets(self) -> None:
        """Zero the last conv: every offset is exactly 0 until trained (vanilla weights keep working)."""
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, h, w] -> offsets [B, ceil(h/s), ceil(w/s), 2] (dx, dy) in pixels, |.| < offset_range."""
        x = self.dw_conv(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.proj(F.gelu(x))  # [B, 2, hk, wk]
        return torch.tanh(x).permute(0, 2, 3, 1) * self.offset_range


def sample_frames(frames: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Step 3: bilinear samples of every frame at the same points.

    frames [B, C, T, h, w] (any strides, e.g. a view of memory tokens); points [B, hk, wk, 2] (x, y)
    pixels -> [B, C, T*hk*wk] (order t, y, x). A point outside the map is clamped to it (border).
    The T frames are folded into the batch of one 4-D bilinear ``grid_sample``, so frames never
    mix (the same numbers as a trilinear 5-D ``grid_sample`` on exact frame indices, and several
    times faster, backward included).
    """
    b, c, t, h, w = frames.shape
    hk, wk = points.shape[1:3]
    if torch.jit.is_tracing():  # an ONNX export: the scale must follow the traced map's size
        width = torch.ones_like(frames[0, 0, 0, 0, :]).sum()
        height = torch.ones_like(frames[0, 0, 0, :, 0]).sum()
        scale = torch.stack([2.0 / (width - 1).clamp(min=1), 2.0 / (height - 1).clamp(min=1)])
    else:
        scale = points.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = (points * scale - 1).unsqueeze(1).expand(b, t, hk, wk, 2).reshape(b * t, hk, wk, 2)  # align_corners
    images = frames.transpose(1, 2).reshape(b * t, c, h, w)  # [B*T, C, h, w]
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(b, t, c, hk * wk).transpose(1, 2).reshape(b, c, t * hk * wk)


def token_frames(x: torch.Tensor, size_2d: tuple[int, int], groups: int) -> torch.Tensor:
    """Memory tokens [T*h*w, N, C] -> a view [N*G, C/G, T, h, w] (no copy)."""
    h, w = size_2d
    _, n, c = x.shape
    t = x.shape[0] // (h * w)
    x = x.view(t, h, w, n, groups, c // groups).permute(3, 4, 5, 0, 1, 2)  # [N, G, C/G, T, h, w]
    return x.reshape(n * groups, c // groups, t, h, w)


def sample_tokens(x: torch.Tensor, points: torch.Tensor, size_2d: tuple[int, int], groups: int) -> torch.Tensor:
    """Memory tokens [T*hw, N, C] sampled per group at points [N*G, hk, wk, 2] -> [N, C, T*hk*wk]."""
    n, c = x.shape[1:]
    return sample_frames(token_frames(x, size_2d, groups), points).reshape(n, c, -1)


def deformable_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | Sequence[torch.Tensor],
                         points: torch.Tensor, size_2d: tuple[int, int], num_heads: int, groups: int = 1,
                         dropout: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention of queries to memory keys/values re-sampled at ``points`` (steps 3 + MHA).

    q [L, N, H*dk] (already scaled by 1/sqrt(dk)); k [T*hw, N, H*dk] memory tokens of T frames of
    size ``size_2d``; v [T*hw, N, H*dv], or channel parts of it (sampled one by one, which avoids
    concatenating the whole memory; concatenated first when groups > 1 so groups follow heads);
    points [N*G, hk, wk, 2] pixel locations, group g serving heads g*H/G .. (g+1)*H/G - 1.
    Returns (output [L, N, H*dv], attention weights [N, H, L, T*hk*wk]).
    """
    length, n, _ = q.shape
    parts = [v] if torch.is_tensor(v) else list(v)
    if groups > 1 and len(parts) > 1:
        parts = [torch.cat(parts, dim=-1)]
    keys = sample_tokens(k, points, size_2d, groups)  # [N, H*dk, K]
    values = torch.cat([sample_tokens(p, points, size_2d, groups) for p in parts], dim=1)  # [N, H*dv, K]
    q = q.view(length, n, num_heads, -1).permute(1, 2, 0, 3)  # [N, H, L, dk]
    keys = keys.view(n, num_heads, -1, keys.shape[-1])  # [N, H, dk, K]
    values = values.view(n, num_heads, -1, values.shape[-1]).transpose(2, 3)  # [N, H, K, dv]
    return attend(q, keys, values, dropout)


class DeformableSampler(nn.Module):
    """Steps 1-2 for one attention: offset network on the query map + reference points."""

    def __init__(self, channels: int, groups: int = 1, stride: int = 1, kernel_size: int = 5,
                 offset_range: float = 1.0) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} offset groups")
        self.groups, self.stride = groups, stride
        self.offset_net = OffsetNetwork(channels // groups, stride, kernel_size, offset_range)

    def locations(self, query_map: torch.Tensor) -> torch.Tensor:
        """query_map [N, C, h, w] -> sampling points [N*G, ceil(h/s), ceil(w/s), 2] (x, y) pixels."""
        n, c, h, w = query_map.shape
        offsets = self.offset_net(query_map.reshape(n * self.groups, c // self.groups, h, w))
        if torch.jit.is_tracing():  # an ONNX export: the grid must follow the traced map's size
            return traced_reference_points(query_map, offsets) + offsets
        return reference_points(h, w, self.stride, query_map.device, query_map.dtype) + offsets

    def sample_map(self, x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Warp one frame x [N, C, h, w] to points [N*G, hk, wk, 2] -> [N, C, hk, wk]."""
        n, c, h, w = x.shape
        frames = x.reshape(n * self.groups, c // self.groups, 1, h, w)
        return sample_frames(frames, points).reshape(n, c, *points.shape[1:3])


def _head_sampler(d_att: int, num_head: int, deform: DeformableConfig, stride: int,
                  offset_range: float) -> DeformableSampler:
    """A sampler over ``num_head`` heads of width ``d_att``; every offset group serves whole heads."""
    if num_head % deform.groups:
        raise ValueError(f"{num_head} heads do not split into {deform.groups} offset groups")
    return DeformableSampler(d_att * num_head, deform.groups, stride, deform.kernel_size, offset_range)


class GatedDeformablePropagation(GatedPropagation):
    """Long-term Gated Deformable Attention (paper Sec. 3, Fig. 2b-c): DeAOT's gated propagation
    ``FC(DWConv(Attn(Q, K~, V~) * U))`` with K~, V~ re-sampled from every memory frame at the
    deformed points of a stride-``s`` grid. Inputs arrive projected (DeAOT's long-term form);
    parameters are those of :class:`GatedPropagation` plus ``sampler.offset_net.*``.
    """

    def __init__(self, d_qk: int, d_vu: int, num_head: int = 1, d_att: int | None = None,
                 expand_ratio: float = 2.0, dropout: float = 0.0, deform: DeformableConfig | None = None) -> None:
        super().__init__(d_qk, d_vu, num_head, use_linear=False, d_att=d_att, expand_ratio=expand_ratio,
                         dropout=dropout)
        deform = deform or DeformableConfig()
        offset_range = deform.stride if deform.long_term_range is None else deform.long_term_range
        self.sampler = _head_sampler(self.d_att, num_head, deform, deform.stride, offset_range)

    def propagate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | Sequence[torch.Tensor],
                  u: torch.Tensor, size_2d: tuple[int, int],
                  need_attn: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q [hw, N, H*dk]; k [T*hw, N, H*dk]; v [T*hw, N, Cv] or its channel parts; u [hw, N, Cv]
        -> ([hw, N, d_vu], weights [N, H, hw, T*hk*wk] when ``need_attn``)."""
        points = self.sampler.locations(seq_to_2d(q, size_2d))  # [N*G, hk, wk, 2]
        out, attn = deformable_attention(q / self.temperature, k, v, points, size_2d, self.num_head,
                                         self.sampler.groups, self.dropout)
        return self.gate_and_project(out, u, size_2d), (attn if need_attn else None)


class LocalGatedDeformablePropagation(LocalGatedPropagation):
    """Short-term Gated Deformable Attention: the previous frame's keys/values are re-sampled at the
    deformed full grid (stride 1: key pixel p is read at p + offset(p)), then DeAOT's 15x15 local
    gated propagation runs on them, so each query's window follows the predicted motion.
    Parameters: those of :class:`LocalGatedPropagation` plus ``sampler.offset_net.*``.
    """

    def __init__(self, d_qk: int, d_vu: int, num_head: int, max_dis: int = 7, d_att: int | None = None,
                 expand_ratio: float = 2.0, dropout: float = 0.0, deform: DeformableConfig | None = None) -> None:
        super().__init__(d_qk, d_vu, num_head, max_dis, d_att, expand_ratio, dropout)
        deform = deform or DeformableConfig()
        offset_range = max_dis if deform.short_term_range is None else deform.short_term_range
        self.sampler = _head_sampler(self.d_att, num_head, deform, 1, offset_range)

    def propagate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                  size_2d: tuple[int, int], need_attn: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q, k [N, H*dk, h, w]; v [N, Cv, h, w]; u [hw, N, Cv] -> ([hw, N, d_vu], weights or None)."""
        points = self.sampler.locations(q)  # [N*G, h, w, 2]
        k = self.sampler.sample_map(k, points)  # [N, H*dk, h, w]
        v = self.sampler.sample_map(v, points)  # [N, Cv, h, w]
        return super().propagate(q, k, v, u, size_2d, need_attn)


def offset_parameter_names(module: nn.Module) -> list[str]:
    """State-dict keys of every :class:`OffsetNetwork` inside ``module`` (what vanilla checkpoints lack)."""
    return [f"{name}.{key}" if name else key
            for name, sub in module.named_modules() if isinstance(sub, OffsetNetwork)
            for key in sub.state_dict()]
