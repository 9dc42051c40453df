"""Gated propagation attention (DeAOT, Yang & Yang, NeurIPS 2022, Sec. 3, "Gated Propagation Module").

Gated propagation replaces the attention of AOT's LSTT blocks. For queries ``Q``, keys ``K``,
values ``V`` and a gate ``U`` (all per token), gated propagation as implemented in aot-benchmark is

    GP(U, V, Q, K) = FC( DWConv( (softmax(Q K^T / sqrt(d_att)) V) * U ) )

i.e. the attention-weighted values are gated element-wise by ``U`` (already passed through SiLU
by the caller or by the module's own projections), then mixed by a 5x5 depthwise convolution over
the 2-D token grid and projected by a linear layer. Two flavours:

* :class:`GatedPropagation` attends to every memory token (long-term propagation and the
  self-propagation of the module).
* :class:`LocalGatedPropagation` lets each query attend to a (2r+1)x(2r+1) window of the
  previous frame (short-term propagation, r = 7), with a learned relative-position term on the
  logits (``relative_emb_k``). The window gather is done with row bands and batched matrix
  products (no dense HW x HW matrix), see :func:`local_dot` and :func:`local_weighted_sum`.

Sequences use the aot-benchmark layout ``[L, N, C]`` (tokens first), 2-D maps ``[N, C, h, w]``.
Parameter names match aot-benchmark ``networks/layers/attention.py`` so checkpoints load directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Bytes one row-band chunk of the local attention may use for its gathered keys/values.
LOCAL_CHUNK_BYTES = 48 * 2**20
#: Maps with at most this many tokens per window slot run the short-term attention densely
#: (all hw x hw scores, out-of-window ones masked): on small maps (training crops: 13 x 13 tokens
#: against a 15 x 15 window) that is cheaper than gathering row bands, the same softmax up to
#: rounding. Inference maps (e.g. 16 x 28 at the shipped student's size 240) stay windowed.
DENSE_LOCAL_MAX_TOKENS_PER_SLOT = 1.0


def silu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), written out as in the reference (bitwise equal to this form)."""
    return x * torch.sigmoid(x)


def seq_to_2d(x: torch.Tensor, size_2d: tuple[int, int]) -> torch.Tensor:
    """[h*w, N, C] -> contiguous [N, C, h, w]."""
    h, w = size_2d
    _, n, c = x.shape
    return x.view(h, w, n, c).permute(2, 3, 0, 1).contiguous()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           dropout: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head softmax attention: q [N, H, L, d] (already scaled), k [N, H, d, M], v [N, H, M, hd]
    -> (output tokens [L, N, H*hd], attention weights [N, H, L, M])."""
    attn = torch.softmax(q @ k, dim=-1)  # [N, H, L, M]
    if dropout is not None:
        attn = dropout(attn)
    n, _, length, _ = q.shape
    return (attn @ v).permute(2, 0, 1, 3).reshape(length, n, -1), attn


class DepthwiseConvSeq(nn.Module):
    """5x5 depthwise conv (no bias) applied to a token sequence [h*w, N, C] laid out on its grid."""

    def __init__(self, channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                              bias=False)

    def forward(self, x: torch.Tensor, size_2d: tuple[int, int]) -> torch.Tensor:
        h, w = size_2d
        _, n, c = x.shape
        x = x.view(h, w, n, c).permute(2, 3, 0, 1)  # [N, C, h, w]
        x = self.conv(x)
        return x.view(n, c, h * w).permute(2, 0, 1)  # [h*w, N, C]


def _merge_halves(x1: torch.Tensor, x2: torch.Tensor, num_head: int, head_dim: int) -> torch.Tensor:
    """Concatenate two half-width projections per head: [L,N,H*hd/2] x2 -> [L,N,H*hd]."""
    length, n, _ = x1.shape
    x1 = x1.view(length, n, num_head, head_dim // 2)
    x2 = x2.view(length, n, num_head, head_dim // 2)
    return torch.cat([x1, x2], dim=-1).view(length, n, num_head * head_dim)


class GatedPropagation(nn.Module):
    """Global gated propagation (DeAOT Sec. 3, "Gated Propagation Module") over all memory tokens.

    Args:
        d_qk: query/key input width. d_vu: value/gate input width (also the output width).
        num_head: heads. d_att: per-head query/key width (default d_qk // num_head).
        use_linear: if True (self-propagation) the module projects Q=K with ``linear_QK`` and
            V, U with two half-width linears each (``linear_V1/V2``, ``linear_U1/U2``) followed by
            SiLU; if False (long-term propagation) inputs arrive already projected.
        expand_ratio: width of V/U after expansion = d_vu * expand_ratio.
    """

    def __init__(self, d_qk: int, d_vu: int, num_head: int = 8, use_linear: bool = True,
                 d_att: int | None = None, expand_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_qk, self.d_vu, self.num_head = d_qk, d_vu, num_head
        self.expand_d_vu = int(d_vu * expand_ratio)
        self.hidden_dim = self.expand_d_vu // num_head  # per-head value width
        self.d_att = d_qk // num_head if d_att is None else d_att
        self.temperature = self.d_att**0.5
        self.use_linear = use_linear
        d_middle = self.d_att * num_head
        if use_linear:
            self.linear_QK = nn.Linear(d_qk, d_middle)
            half = self.hidden_dim * num_head // 2
            self.linear_V1 = nn.Linear(d_vu // 2, half)
            self.linear_V2 = nn.Linear(d_vu // 2, half)
            self.linear_U1 = nn.Linear(d_vu // 2, half)
            self.linear_U2 = nn.Linear(d_vu // 2, half)
        self.dropout = nn.Dropout(dropout)
        self.dw_conv = DepthwiseConvSeq(self.expand_d_vu)
        self.projection = nn.Linear(self.expand_d_vu, d_vu)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                size_2d: tuple[int, int]) -> torch.Tensor:
        """q [L, N, d_qk]; k [M, N, d_att*H]; v [M, N, d_vu or expand]; u [L, N, ...] -> [L, N, d_vu]."""
        return self.propagate(q, k, v, u, size_2d)[0]

    def propagate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                  size_2d: tuple[int, int], need_attn: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` plus, when ``need_attn``, the attention weights [N, H, L, M] (else None)."""
        heads, hd = self.num_head, self.hidden_dim
        n = q.shape[1]
        if self.use_linear:
            q = k = self.linear_QK(q)
            v1, v2 = torch.split(v, self.d_vu // 2, dim=-1)
            v = silu(_merge_halves(self.linear_V1(v1), self.linear_V2(v2), heads, hd))
            u1, u2 = torch.split(u, self.d_vu // 2, dim=-1)
            u = silu(_merge_halves(self.linear_U1(u1), self.linear_U2(u2), heads, hd))
        q = q / self.temperature
        q = q.view(-1, n, heads, self.d_att).permute(1, 2, 0, 3)  # [N, H, L, d_att]
        k = k.view(-1, n, heads, self.d_att).permute(1, 2, 3, 0)  # [N, H, d_att, M]
        v = v.view(-1, n, heads, hd).permute(1, 2, 0, 3)  # [N, H, M, hd]
        out, attn = attend(q, k, v, self.dropout)  # [L, N, H*hd]
        return self.gate_and_project(out, u, size_2d), (attn if need_attn else None)

    def gate_and_project(self, out: torch.Tensor, u: torch.Tensor, size_2d: tuple[int, int]) -> torch.Tensor:
        """Gate the attention output [L, N, expand] by ``u``, 5x5 depthwise conv, linear -> [L, N, d_vu]."""
        out = out * u
        out = self.dw_conv(out, size_2d)
        return self.projection(out)


def _window_index(width: int, radius: int, device: torch.device) -> torch.Tensor:
    """[w, (2r+1)^2] long: for query column x and window slot (dy, dx), the position
    ``dy * (w + 2r) + x + dx`` inside a row band of 2r+1 zero-padded key rows."""
    win = 2 * radius + 1
    padded_w = width + 2 * radius
    dy = torch.arange(win, device=device).view(win, 1)
    dx = torch.arange(win, device=device).view(1, win)
    slot = (dy * padded_w + dx).reshape(1, win * win)  # [1, win^2]
    return torch.arange(width, device=device).view(width, 1) + slot  # [w, win^2]


def _row_chunk(batch: int, channels: int, height: int, width: int, radius: int) -> int:
    win = 2 * radius + 1
    per_row = batch * channels * win * (width + 2 * radius) * 4
    return max(1, min(height, LOCAL_CHUNK_BYTES // max(per_row, 1)))


def _row_bands(x_pad: torch.Tensor, y0: int, y1: int, radius: int) -> torch.Tensor:
    """Row bands of a zero-padded map [B, C, h+2r, w+2r] for query rows y0..y1-1:
    [B*(y1-y0), C, (2r+1)*(w+2r)] where band row y holds padded rows y..y+2r."""
    win = 2 * radius + 1
    b, c, _, padded_w = x_pad.shape
    bands = x_pad[:, :, y0:y1 + 2 * radius].unfold(2, win, 1)  # [B, C, rows, w+2r, win] (view)
    return bands.permute(0, 2, 1, 4, 3).reshape(b * (y1 - y0), c, win * padded_w)


def local_dot(q: torch.Tensor, k: torch.Tensor, radius: int) -> torch.Tensor:
    """Windowed dot products: q, k [B, D, h, w] -> [B, (2r+1)^2, h, w].

    ``out[b, dy*(2r+1)+dx, y, x] = sum_d q[b,d,y,x] * k[b,d,y+dy-r,x+dx-r]`` with zeros outside
    the map (slot order as ``F.unfold``).
    """
    b, d, h, w = q.shape
    win = 2 * radius + 1
    k_pad = F.pad(k, (radius, radius, radius, radius))
    index = _window_index(w, radius, q.device)  # [w, win^2]
    step = _row_chunk(b, d, h, w, radius)
    out = []
    for y0 in range(0, h, step):
        y1 = min(h, y0 + step)
        rows = y1 - y0
        q_rows = q[:, :, y0:y1].permute(0, 2, 3, 1).reshape(b * rows, w, d)  # [B*rows, w, D]
        scores = torch.bmm(q_rows, _row_bands(k_pad, y0, y1, radius))  # [B*rows, w, win*(w+2r)]
        out.append(scores.gather(2, index.expand(b * rows, w, win * win)).view(b, rows, w, win * win))
    return torch.cat(out, dim=1).permute(0, 3, 1, 2)  # [B, win^2, h, w]


def local_weighted_sum(attn: torch.Tensor, v: torch.Tensor, radius: int) -> torch.Tensor:
    """Windowed aggregation: attn [B, (2r+1)^2, h, w], v [B, C, h, w] -> [B, C, h, w].

    ``out[b, c, y, x] = sum_{dy,dx} attn[b, dy*(2r+1)+dx, y, x] * v[b, c, y+dy-r, x+dx-r]``
    (zeros outside the map). Each query row is one matrix product of its key row band
    [C, (2r+1)*(w+2r)] with a banded weight matrix [(2r+1)*(w+2r), w].
    """
    b, c, h, w = v.shape
    win = 2 * radius + 1
    padded_w = w + 2 * radius
    v_pad = F.pad(v, (radius, radius, radius, radius))
    index = _window_index(w, radius, v.device).t()  # [win^2, w]
    step = _row_chunk(b, c, h, w, radius)
    out = []
    for y0 in range(0, h, step):
        y1 = min(h, y0 + step)
        rows = y1 - y0
        weights = attn[:, :, y0:y1].permute(0, 2, 1, 3).reshape(b * rows, win * win, w)
        band = attn.new_zeros(b * rows, win * padded_w, w)
        band.scatter_(1, index.expand(b * rows, win * win, w), weights)  # banded [B*rows, win*(w+2r), w]
        agg = torch.bmm(_row_bands(v_pad, y0, y1, radius), band)  # [B*rows, C, w]
        out.append(agg.view(b, rows, c, w))
    return torch.cat(out, dim=1).permute(0, 2, 1, 3)  # [B, C, h, w]


def window_slots(height: int, width: int, radius: int, device: torch.device | None = None) -> torch.Tensor:
    """[h*w (query), h*w (key)] long: the window slot ``(dy + r) * (2r+1) + (dx + r)`` at which the
    key lies in the query's window, or -1 outside it."""
    return _slots(torch.arange(height, device=device), torch.arange(width, device=device), radius)


def _slots(rows: torch.Tensor, cols: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`window_slots` of the grid of row indices ``rows`` [h] and column indices ``cols`` [w]."""
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys.view(1, -1) - ys.view(-1, 1)  # [q, k]
    dx = xs.view(1, -1) - xs.view(-1, 1)
    inside = (dy.abs() <= radius) & (dx.abs() <= radius)
    slots = (dy + radius) * (2 * radius + 1) + (dx + radius)
    return torch.where(inside, slots, torch.full_like(slots, -1))


def traced_window_slots(query_map: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`window_slots` of ``query_map`` [B, D, h, w]'s size from tensor ops only (an ONNX
    export computes it from its input's size)."""
    rows = (torch.ones_like(query_map[0, 0, :, 0]).cumsum(0) - 1).long()  # 0 .. h-1
    cols = (torch.ones_like(query_map[0, 0, 0, :]).cumsum(0) - 1).long()  # 0 .. w-1
    return _slots(rows, cols, radius)


def dense_local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, radius: int,
                          dropout: nn.Module | None = None, need_attn: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The windowed attention of :class:`LocalGatedPropagation` computed densely, for small maps.

    q (already scaled), k [B, D, h, w]; v [B, C, h, w]; bias [B, (2r+1)^2, h*w] (the per-slot
    logit term). Scores of every query against every key, plus the bias of the key's window slot;
    keys outside the window get -1e8 (exactly zero weight, as the window's padding slots get), then
    softmax over the keys and the weighted sum. Returns (out [B, C, h, w], window weights
    [B, (2r+1)^2, h*w] as the windowed form gives them, when ``need_attn``).
    """
    b, d, h, w = q.shape
    slots = traced_window_slots(q, radius) if torch.jit.is_tracing() else window_slots(h, w, radius, q.device)
    inside = slots >= 0
    logits = q.flatten(2).transpose(1, 2) @ k.flatten(2)  # [B, hw_q, hw_k]
    per_slot = bias.transpose(1, 2)  # [B, hw_q, slots]
    logits = logits + per_slot.gather(2, slots.clamp(min=0).expand(b, -1, -1))
    logits = logits.masked_fill(~inside, -1e8 if logits.dtype == torch.float32 else -1e4)
    attn = torch.softmax(logits, dim=-1)
    if dropout is not None:
        attn = dropout(attn)
    out = (v.flatten(2) @ attn.transpose(1, 2)).view(b, -1, h, w)  # [B, C, h, w]
    if not need_attn:
        return out, None
    window = attn.new_zeros(b, h * w, bias.shape[1])  # [B, hw_q, slots]
    window.scatter_add_(2, slots.clamp(min=0).expand(b, -1, -1), attn * inside)  # outside: adds 0
    return out, window.transpose(1, 2)


def window_padding_mask(height: int, width: int, radius: int, device: torch.device | None = None) -> torch.Tensor:
    """[1, 1, (2r+1)^2, h*w] float: 1 where the window slot falls outside the map."""
    ones = torch.ones(1, 1, height, width, device=device)
    win = 2 * radius + 1
    inside = F.unfold(F.pad(ones, (radius, radius, radius, radius)), kernel_size=win)
    return (1 - inside).view(1, 1, win * win, height * width)


class LocalGatedPropagation(nn.Module):
    """Short-term gated propagation within a (2r+1)^2 window (DeAOT Sec. 3, r = 7).

    Logits are ``q.k / sqrt(d_att) + relative_emb_k(q)`` (a 1x1 conv giving one learned bias per
    window slot), slots outside the frame get -1e8, softmax over the window. Only the
    ``use_linear=False`` form that DeAOT uses is implemented (inputs arrive projected).
    """

    def __init__(self, d_qk: int, d_vu: int, num_head: int, max_dis: int = 7, d_att: int | None = None,
                 expand_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_qk, self.d_vu, self.num_head = d_qk, d_vu, num_head
        self.expand_d_vu = int(d_vu * expand_ratio)
        self.hidden_dim = self.expand_d_vu // num_head
        self.d_att = d_qk // num_head if d_att is None else d_att
        self.temperature = self.d_att**0.5
        self.max_dis = max_dis
        self.window_size = 2 * max_dis + 1
        d_middle = self.d_att * num_head
        self.relative_emb_k = nn.Conv2d(d_middle, num_head * self.window_size**2, kernel_size=1,
                                        groups=num_head)
        self.dw_conv = DepthwiseConvSeq(self.expand_d_vu)
        self.projection = nn.Linear(self.expand_d_vu, d_vu)
        self.dropout = nn.Dropout(dropout)
        self._mask_cache: tuple[tuple[int, int, torch.device], torch.Tensor] | None = None
        #: compute the window densely whatever the map's size (an ONNX export: the banded form's
        #: row chunks are Python loops a trace would freeze)
        self.always_dense = False

    def _padding_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, device)
        cached = self._mask_cache  # read once: another thread (the app's jobs) may swap it meanwhile
        if cached is None or cached[0] != key:
            cached = self._mask_cache = (key, window_padding_mask(h, w, self.max_dis, device))
        return cached[1]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                size_2d: tuple[int, int]) -> torch.Tensor:
        """q, k [N, d_att*H, h, w]; v [N, expand, h, w]; u [h*w, N, expand] -> [h*w, N, d_vu]."""
        return self.propagate(q, k, v, u, size_2d)[0]

    def propagate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                  size_2d: tuple[int, int], need_attn: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` plus, when ``need_attn``, the window weights [N, H, (2r+1)^2, h*w] (else None)."""
        n, _, h, w = v.shape
        heads, slots = self.num_head, self.window_size**2
        rel = self.relative_emb_k(q).view(n, heads, slots, h * w)  # [N, H, win^2, hw]
        q = (q / self.temperature).reshape(n * heads, self.d_att, h, w)
        k = k.reshape(n * heads, self.d_att, h, w)
        if self.always_dense or h * w <= DENSE_LOCAL_MAX_TOKENS_PER_SLOT * slots:
            agg, attn = dense_local_attention(q, k, v.reshape(n * heads, self.hidden_dim, h, w),
                                              rel.reshape(n * heads, slots, h * w), self.max_dis, self.dropout,
                                              need_attn)
            attn = None if attn is None else attn.view(n, heads, slots, h * w)
            return self.gate_and_project_local(agg, u, size_2d), attn
        logits = local_dot(q, k, self.max_dis).view(n, heads, slots, h * w)
        logits = logits + rel
        logits = logits - self._padding_mask(h, w, q.device) * (1e8 if logits.dtype == torch.float32 else 1e4)
        attn = self.dropout(torch.softmax(logits, dim=2))  # [N, H, win^2, hw]
        agg = local_weighted_sum(attn.view(n * heads, slots, h, w),
                                 v.reshape(n * heads, self.hidden_dim, h, w), self.max_dis)
        return self.gate_and_project_local(agg, u, size_2d), (attn if need_attn else None)

    def gate_and_project_local(self, agg: torch.Tensor, u: torch.Tensor, size_2d: tuple[int, int]) -> torch.Tensor:
        """Aggregated values [N*H, hd, h, w] -> gate by ``u`` [hw, N, expand], 5x5 depthwise conv,
        linear -> [hw, N, d_vu]."""
        h, w = size_2d
        n = u.shape[1]
        agg = agg.reshape(n, self.num_head, self.hidden_dim, h * w).permute(3, 0, 1, 2).reshape(h * w, n, -1)
        out = self.dw_conv(agg * u, size_2d)  # [hw, N, expand]
        return self.projection(out)  # [hw, N, d_vu]
