"""Local (windowed) gated propagation vs a naive dense-masked reference, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from vosuite.nn.attention import (
    GatedPropagation,
    LocalGatedPropagation,
    local_dot,
    local_weighted_sum,
    window_padding_mask,
)


def _offsets(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dy, dx [hw_q, hw_k]: key position minus query position."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return ys[None, :] - ys[:, None], xs[None, :] - xs[:, None]


def _dense_local_scores(q, k, radius):
    """[B, win^2, h, w] by brute force over all query/key pairs."""
    b, d, h, w = q.shape
    win = 2 * radius + 1
    dy, dx = _offsets(h, w)
    inside = (dy.abs() <= radius) & (dx.abs() <= radius)
    full = torch.einsum("bdq,bdk->bqk", q.reshape(b, d, -1), k.reshape(b, d, -1))
    out = torch.zeros(b, win * win, h * w, dtype=q.dtype)
    qi, ki = inside.nonzero(as_tuple=True)
    slot = (dy[qi, ki] + radius) * win + (dx[qi, ki] + radius)
    out[:, slot, qi] = full[:, qi, ki]
    return out.view(b, win * win, h, w)


@pytest.mark.parametrize(("h", "w", "radius"), [(5, 7, 2), (4, 3, 7), (9, 11, 3)])
def test_local_dot_and_sum_match_dense(h, w, radius):
    g = torch.Generator().manual_seed(0)
    b, d, c = 2, 6, 5
    win = 2 * radius + 1
    q = torch.randn(b, d, h, w, generator=g, dtype=torch.float64)
    k = torch.randn(b, d, h, w, generator=g, dtype=torch.float64)
    v = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    assert torch.allclose(local_dot(q, k, radius), _dense_local_scores(q, k, radius), atol=1e-12)

    attn = torch.rand(b, win * win, h, w, generator=g, dtype=torch.float64)
    dy, dx = _offsets(h, w)
    inside = (dy.abs() <= radius) & (dx.abs() <= radius)
    dense = torch.zeros(b, h * w, h * w, dtype=torch.float64)  # [B, q, k]
    qi, ki = inside.nonzero(as_tuple=True)
    slot = (dy[qi, ki] + radius) * win + (dx[qi, ki] + radius)
    dense[:, qi, ki] = attn.view(b, win * win, h * w)[:, slot, qi]
    expected = torch.einsum("bqk,bck->bcq", dense, v.reshape(b, c, -1)).view(b, c, h, w)
    assert torch.allclose(local_weighted_sum(attn, v, radius), expected, atol=1e-12)


def test_row_chunking_gives_same_result(monkeypatch):
    import vosuite.nn.attention as att

    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 10, 6, generator=g, dtype=torch.float64)
    v = torch.randn(1, 3, 10, 6, generator=g, dtype=torch.float64)
    a = torch.rand(1, 25, 10, 6, generator=g, dtype=torch.float64)
    whole = (local_dot(q, q, 2), local_weighted_sum(a, v, 2))
    monkeypatch.setattr(att, "LOCAL_CHUNK_BYTES", 1)  # one row per chunk
    assert torch.equal(local_dot(q, q, 2), whole[0])
    assert torch.equal(local_weighted_sum(a, v, 2), whole[1])


def test_padding_mask():
    m = window_padding_mask(3, 4, 1).view(9, 3, 4)
    assert m[4].sum() == 0  # centre slot always inside
    assert m[0, 0, 0] == 1 and m[0, 1, 1] == 0  # up-left neighbour of (0,0) is outside


@pytest.mark.parametrize("heads", [1, 2])
def test_local_gated_propagation_matches_dense_reference(heads):
    torch.manual_seed(0)
    h, w, n, radius = 6, 7, 2, 2
    d_qk, d_vu, d_att = 16, 8, 8 if heads == 1 else 4
    mod = LocalGatedPropagation(d_qk, d_vu, heads, max_dis=radius, d_att=d_att).double().eval()
    for p in mod.parameters():
        torch.nn.init.normal_(p, std=0.3)
    expand = mod.expand_d_vu
    q = torch.randn(n, d_att * heads, h, w, dtype=torch.float64)
    k = torch.randn(n, d_att * heads, h, w, dtype=torch.float64)
    v = torch.randn(n, expand, h, w, dtype=torch.float64)
    u = torch.randn(h * w, n, expand, dtype=torch.float64)
    got = mod(q, k, v, u, (h, w))

    # reference: dense logits over all keys, relative-position bias per window slot, -inf outside
    win = 2 * radius + 1
    rel = mod.relative_emb_k(q).view(n, heads, win * win, h * w)
    qh = q.view(n, heads, d_att, h * w) / math.sqrt(d_att)
    kh = k.view(n, heads, d_att, h * w)
    logits = torch.einsum("nhdq,nhdk->nhqk", qh, kh)
    dy, dx = _offsets(h, w)
    inside = (dy.abs() <= radius) & (dx.abs() <= radius)
    slot = ((dy + radius) * win + (dx + radius)).clamp(0, win * win - 1)  # [q, k]
    bias = torch.gather(rel, 2, slot.t()[None, None].expand(n, heads, -1, -1)).transpose(2, 3)  # [n,h,q,k]
    logits = (logits + bias).masked_fill(~inside, float("-inf"))
    attn = logits.softmax(-1)
    vh = v.view(n, heads, expand // heads, h * w)
    agg = torch.einsum("nhqk,nhck->qnhc", attn, vh).reshape(h * w, n, expand) * u
    expected = mod.projection(mod.dw_conv(agg, (h, w)))
    assert torch.allclose(got, expected, atol=1e-10)


def test_global_gated_propagation_formula():
    torch.manual_seed(0)
    h, w, n, heads = 3, 4, 2, 2
    mod = GatedPropagation(8, 8, heads, d_att=4).double().eval()
    x = torch.randn(h * w, n, 8, dtype=torch.float64)
    got = mod(x, x, x, x, (h, w))
    silu = torch.nn.functional.silu
    q = mod.linear_QK(x).view(h * w, n, heads, 4)
    hd = mod.hidden_dim

    def expand(x1, x2):  # per-head [half1 | half2]
        return torch.cat([x1.view(h * w, n, heads, hd // 2), x2.view(h * w, n, heads, hd // 2)], -1)

    v = silu(expand(mod.linear_V1(x[..., :4]), mod.linear_V2(x[..., 4:])))
    u = silu(expand(mod.linear_U1(x[..., :4]), mod.linear_U2(x[..., 4:]))).reshape(h * w, n, -1)
    attn = (torch.einsum("qnhd,knhd->nhqk", q, q) / 2.0).softmax(-1)
    agg = torch.einsum("nhqk,knhc->qnhc", attn, v).reshape(h * w, n, -1) * u
    expected = mod.projection(mod.dw_conv(agg, (h, w)))
    assert torch.allclose(got, expected, atol=1e-10)
