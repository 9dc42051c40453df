"""Deformable attention (arXiv 2401.13937 Sec. 3, after DAT): equivalence with standard attention at
zero offsets on the full key grid, gradients, offset bounds, border sampling, determinism."""

from __future__ import annotations

import pytest
import torch

from vosuite.nn.attention import GatedPropagation, LocalGatedPropagation, seq_to_2d
from vosuite.nn.deformable_attention import (
    DeformableConfig,
    GatedDeformablePropagation,
    LocalGatedDeformablePropagation,
    OffsetNetwork,
    deformable_attention,
    reference_points,
    sample_frames,
)


def _standard_attention(q, k, v, heads):
    """Dense multi-head softmax attention on token layouts: q [L,N,H*d], k [M,N,H*d], v [M,N,H*e]."""
    length, n, _ = q.shape
    qh = q.view(length, n, heads, -1).permute(1, 2, 0, 3)
    kh = k.view(k.shape[0], n, heads, -1).permute(1, 2, 3, 0)
    vh = v.view(v.shape[0], n, heads, -1).permute(1, 2, 0, 3)
    attn = torch.softmax(qh @ kh, dim=-1)
    return (attn @ vh).permute(2, 0, 1, 3).reshape(length, n, -1), attn


def _ref(h, w, stride, batch, dtype=torch.float32):
    return reference_points(h, w, stride, dtype=dtype).expand(batch, -1, -1, -1)


@pytest.mark.parametrize(("h", "w", "stride"), [(5, 7, 1), (5, 7, 2), (31, 54, 4), (1, 3, 2)])
def test_reference_points_grid(h, w, stride):
    ref = reference_points(h, w, stride)
    hk, wk = -(-h // stride), -(-w // stride)
    assert ref.shape == (hk, wk, 2)
    assert (ref[..., 0] >= 0).all() and (ref[..., 0] <= w - 1).all()
    assert (ref[..., 1] >= 0).all() and (ref[..., 1] <= h - 1).all()
    if stride == 1:
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        assert torch.equal(ref, torch.stack([xs, ys], -1).float())


@pytest.mark.parametrize(("frames", "h", "w", "heads", "groups"), [(1, 5, 7, 1, 1), (3, 7, 4, 2, 1),
                                                                   (2, 6, 9, 4, 2)])
def test_zero_offsets_full_grid_equal_standard_attention(frames, h, w, heads, groups):
    torch.manual_seed(0)
    n, dk, dv = 2, 8, 6
    q = torch.randn(h * w, n, heads * dk)
    k = torch.randn(frames * h * w, n, heads * dk)
    v = torch.randn(frames * h * w, n, heads * dv)
    out, attn = deformable_attention(q, k, v, _ref(h, w, 1, n * groups), (h, w), heads, groups)
    want, want_attn = _standard_attention(q, k, v, heads)
    assert attn.shape == (n, heads, h * w, frames * h * w)
    assert torch.allclose(out, want, atol=1e-5) and torch.allclose(attn, want_attn, atol=1e-5)
    # values given as channel parts (as the GPM passes [V | V_id]) give the same result
    parts_out, _ = deformable_attention(q, k, torch.split(v, [heads * dv // 2] * 2, -1),
                                        _ref(h, w, 1, n * groups), (h, w), heads, groups)
    assert torch.allclose(parts_out, out, atol=1e-6)


def _copy_shared(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    result = dst.load_state_dict(src.state_dict(), strict=False)
    assert not result.unexpected_keys and all(".offset_net." in key for key in result.missing_keys)


def test_gated_deformable_equals_gated_propagation_at_zero_offsets():
    torch.manual_seed(1)
    h, w, frames, n = 5, 7, 3, 2
    vanilla = GatedPropagation(16, 16, 2, use_linear=False, d_att=8).eval()
    deform = GatedDeformablePropagation(16, 16, 2, d_att=8, deform=DeformableConfig(stride=1)).eval()
    _copy_shared(vanilla, deform)
    q = torch.randn(h * w, n, 16)
    k = torch.randn(frames * h * w, n, 16)
    v = torch.randn(frames * h * w, n, 32)
    u = torch.randn(h * w, n, 32)
    want, want_attn = vanilla.propagate(q, k, v, u, (h, w), need_attn=True)
    got, attn = deform.propagate(q, k, v, u, (h, w), need_attn=True)
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(attn, want_attn, atol=1e-5)
    assert deform.propagate(q, k, v, u, (h, w))[1] is None  # weights only on request


def test_local_deformable_equals_local_at_zero_offsets():
    torch.manual_seed(2)
    h, w, n = 9, 6, 2
    vanilla = LocalGatedPropagation(16, 16, 2, max_dis=2, d_att=8).eval()
    deform = LocalGatedDeformablePropagation(16, 16, 2, max_dis=2, d_att=8).eval()
    _copy_shared(vanilla, deform)
    q, k = torch.randn(n, 16, h, w), torch.randn(n, 16, h, w)
    v, u = torch.randn(n, 32, h, w), torch.randn(h * w, n, 32)
    want, want_attn = vanilla.propagate(q, k, v, u, (h, w), need_attn=True)
    got, attn = deform.propagate(q, k, v, u, (h, w), need_attn=True)
    assert attn.shape == (n, 2, 25, h * w)
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(attn, want_attn, atol=1e-5)


def test_gradcheck_functional_with_offsets():
    torch.manual_seed(3)
    h, w, frames, n, heads = 5, 6, 2, 1, 2
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(h * w, n, heads * 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(frames * h * w, n, heads * 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(frames * h * w, n, heads * 2, dtype=torch.float64, requires_grad=True)
    offsets = (torch.rand(n, 3, 3, 2, generator=gen, dtype=torch.float64) - 0.5) * 0.8
    points = (_ref(h, w, 2, n, torch.float64) + offsets).requires_grad_(True)

    def fn(q, k, v, points):
        return deformable_attention(q, k, v, points, (h, w), heads)

    assert torch.autograd.gradcheck(fn, (q, k, v, points), eps=1e-6, atol=1e-6, fast_mode=True)
    # full Jacobian w.r.t. the sampling points (i.e. the offsets)
    assert torch.autograd.gradcheck(lambda p: fn(q.detach(), k.detach(), v.detach(), p), (points,),
                                    eps=1e-6, atol=1e-6)


def test_gradcheck_module_through_offset_network():
    torch.manual_seed(4)
    h, w, frames, n = 5, 5, 2, 1
    mod = GatedDeformablePropagation(4, 4, 1, d_att=4, deform=DeformableConfig(stride=2, kernel_size=3)).double()
    torch.nn.init.normal_(mod.sampler.offset_net.proj.weight, std=0.5)  # non-zero offsets
    args = [torch.randn(h * w, n, 4), torch.randn(frames * h * w, n, 4), torch.randn(frames * h * w, n, 8),
            torch.randn(h * w, n, 8)]
    args = [a.double().requires_grad_(True) for a in args]
    offsets = mod.sampler.locations(seq_to_2d(args[0], (h, w))) - reference_points(h, w, 2, dtype=torch.float64)
    assert offsets.abs().max() > 1e-3

    def fn(q, k, v, u):
        return mod(q, k, v, u, (h, w))

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, fast_mode=True)


def test_offsets_bounded_and_points_near_map():
    torch.manual_seed(5)
    net = OffsetNetwork(8, stride=2, kernel_size=3, offset_range=1.5)
    assert net(torch.randn(2, 8, 7, 9)).abs().max() == 0  # zero-initialised last conv
    torch.nn.init.normal_(net.proj.weight, std=100.0)
    offsets = net(torch.randn(2, 8, 7, 9) * 100)
    assert offsets.shape == (2, 4, 5, 2)
    assert offsets.abs().max() <= 1.5 and offsets.abs().max() > 1.0  # saturates at, never past, the bound


def test_sampling_outside_clamps_to_border_and_frames_stay_apart():
    h, w, frames = 4, 5, 3
    maps = torch.randn(1, 2, frames, h, w)
    points = torch.tensor([[[[-3.0, 2.0], [4.6, -0.7], [1.5, 9.0], [2.25, 1.5]]]])  # (x, y) [1, 1, 4, 2]
    clamped = torch.stack([points[..., 0].clamp(0, w - 1), points[..., 1].clamp(0, h - 1)], -1)
    got = sample_frames(maps, points)
    assert torch.allclose(got, sample_frames(maps, clamped), atol=1e-6)
    assert torch.allclose(got.view(2, frames, 4)[:, :, 0], maps[0, :, :, 2, 0], atol=1e-6)  # (x=-3,y=2) -> (0,2)
    x0, y0 = 2.25, 1.5  # interior point: plain bilinear inside each frame, no mixing across frames
    bil = (maps[0, :, :, 1, 2] * 0.75 * 0.5 + maps[0, :, :, 1, 3] * 0.25 * 0.5
           + maps[0, :, :, 2, 2] * 0.75 * 0.5 + maps[0, :, :, 2, 3] * 0.25 * 0.5)
    assert (x0, y0) == tuple(points[0, 0, 3].tolist())
    assert torch.allclose(got.view(2, frames, 4)[:, :, 3], bil, atol=1e-5)
    const = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(1, 1, frames, h, w)
    per_frame = sample_frames(const, points).view(frames, 4)
    assert torch.allclose(per_frame, torch.arange(frames, dtype=torch.float32).view(frames, 1), atol=1e-5)


def test_deterministic_and_strided_sample_count():
    torch.manual_seed(6)
    h, w, frames, n = 7, 11, 4, 2
    mod = GatedDeformablePropagation(8, 8, 1, d_att=8, deform=DeformableConfig(stride=3)).eval()
    torch.nn.init.normal_(mod.sampler.offset_net.proj.weight, std=1.0)
    args = (torch.randn(h * w, n, 8), torch.randn(frames * h * w, n, 8), torch.randn(frames * h * w, n, 16),
            torch.randn(h * w, n, 16))
    out1, attn1 = mod.propagate(*args, (h, w), need_attn=True)
    out2, attn2 = mod.propagate(*args, (h, w), need_attn=True)
    assert torch.equal(out1, out2) and torch.equal(attn1, attn2)
    assert attn1.shape == (n, 1, h * w, frames * 3 * 4)  # ceil(7/3) * ceil(11/3) points per frame
    assert torch.allclose(attn1.sum(-1), torch.ones(n, 1, h * w), atol=1e-5)


def test_invalid_settings():
    with pytest.raises(ValueError):
        DeformableConfig(kernel_size=4)
    with pytest.raises(ValueError, match="offset groups"):
        GatedDeformablePropagation(8, 8, 1, d_att=8, deform=DeformableConfig(groups=2))


def test_the_traced_grids_equal_the_eager_ones() -> None:
    """The tensor-only forms an ONNX trace uses give the eager reference points and window slots."""
    from vosuite.nn.attention import traced_window_slots, window_slots
    from vosuite.nn.deformable_attention import grid_size, reference_points, traced_reference_points

    for height, width, stride in ((13, 19, 4), (16, 28, 4), (31, 54, 8), (7, 5, 1)):
        hk, wk = grid_size(height, width, stride)
        traced = traced_reference_points(torch.zeros(1, 2, height, width), torch.zeros(3, hk, wk, 2))
        assert torch.allclose(traced, reference_points(height, width, stride), rtol=0, atol=1e-6)
        query = torch.zeros(1, 2, height, width)
        assert torch.equal(traced_window_slots(query, 3), window_slots(height, width, 3))
