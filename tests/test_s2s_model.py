"""ConvLSTM against a float64 re-computation and gradcheck; S2S / S2S++ shapes, strides, state
layout and recurrence; VGG-16 and MobileNetV2 skip encoders; config look-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vosuite.models.s2s import (
    MEMORY_LEVELS,
    S2S,
    S2S_VARIANTS,
    MobileNetV2Skips,
    S2SConfig,
    get_s2s_config,
)
from vosuite.nn.convlstm import ConvLSTMCell
from vosuite.nn.frozen_bn import FrozenBatchNorm2d, freeze_batch_norm, thaw_batch_norm
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.vgg import VGG16


# -- ConvLSTM ---------------------------------------------------------------------------------------
def _conv_same_f64(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Direct 'same' cross-correlation: x [N, C, H, W], weight [O, C, k, k] -> [N, O, H, W]."""
    n, _, h, w = x.shape
    k = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = np.broadcast_to(bias[None, :, None, None], (n, weight.shape[0], h, w)).copy()
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("nchw,oc->nohw", padded[:, :, dy : dy + h, dx : dx + w], weight[:, :, dy, dx])
    return out


def _reference_step(cell: ConvLSTMCell, x, h, c, activation: str):
    """Shi et al. Eq. 3 without peepholes, in float64 numpy; gates i, f, o, g in that order."""
    weight = cell.conv.weight.detach().double().numpy()
    bias = cell.conv.bias.detach().double().numpy()
    hid = cell.hidden_channels
    pre = _conv_same_f64(np.concatenate([x, h], axis=1), weight, bias)
    i, f, o, g = (pre[:, j * hid : (j + 1) * hid] for j in range(4))

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    if activation == "standard":
        c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c_next), c_next
    c_next = sigmoid(f) * c + sigmoid(i) * sigmoid(g)
    return sigmoid(o) * np.maximum(c_next, 0), c_next


@pytest.mark.parametrize("activation", ["standard", "rs2s"])
@pytest.mark.parametrize("kernel", [3, 5])
def test_convlstm_matches_float64_equations(activation: str, kernel: int) -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel, activation=activation)
    x, h, c = torch.randn(2, 3, 6, 7), torch.randn(2, 4, 6, 7), torch.randn(2, 4, 6, 7)
    ref_h, ref_c = _reference_step(cell, x.double().numpy(), h.double().numpy(), c.double().numpy(), activation)
    got_h, got_c = cell(x, (h, c))
    np.testing.assert_allclose(got_h.detach().double().numpy(), ref_h, atol=2e-6)
    np.testing.assert_allclose(got_c.detach().double().numpy(), ref_c, atol=2e-6)
    got_h64, got_c64 = cell.double()(x.double(), (h.double(), c.double()))
    np.testing.assert_allclose(got_h64.detach().numpy(), ref_h, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_c64.detach().numpy(), ref_c, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("activation", ["standard", "rs2s"])
def test_convlstm_gradcheck(activation: str) -> None:
    torch.manual_seed(1)
    cell = ConvLSTMCell(2, 2, 3, activation=activation).double()
    inputs = tuple(torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda x, h, c: cell(x, (h, c)), inputs)


def test_convlstm_options_and_zero_state() -> None:
    cell = ConvLSTMCell(2, 5)
    h, c = cell.zero_state(torch.zeros(3, 2, 4, 6))
    assert h.shape == c.shape == (3, 5, 4, 6) and not h.any()
    with pytest.raises(ValueError, match="activation"):
        ConvLSTMCell(2, 5, activation="relu")
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(2, 5, kernel_size=4)


# -- encoders ---------------------------------------------------------------------------------------
def test_vgg16_layout_and_torchvision_names() -> None:
    with torch.device("meta"):
        plain, normed = VGG16(norm=None), VGG16(in_channels=4)
        outs = plain(torch.zeros(1, 3, 64, 96))
    assert plain.out_channels == (64, 128, 256, 512, 512)
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6),
                                                  (512, 2, 3)]
    conv_ids = sorted(int(k.split(".")[1]) for k in plain.state_dict() if k.endswith("weight"))
    assert conv_ids == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16().features
    assert sum(p.numel() for p in plain.parameters()) == 14_714_688  # VGG-16 without its classifier
    assert normed.state_dict()["features.0.weight"].shape == (64, 4, 3, 3)
    assert isinstance(normed.features[1], FrozenBatchNorm2d) and "features.41.running_var" in normed.state_dict()


def test_mobilenetv2_skips_strides_and_names() -> None:
    with torch.device("meta"):
        net, base = MobileNetV2Skips(in_channels=4), MobileNetV2(output_stride=32)
        outs = net(torch.zeros(1, 4, 64, 96))
    assert net.out_channels == (16, 24, 32, 96, 1280)
    assert [tuple(o.shape[1:]) for o in outs] == [(16, 32, 48), (24, 16, 24), (32, 8, 12), (96, 4, 6),
                                                  (1280, 2, 3)]
    assert set(net.state_dict()) == set(base.state_dict())
    assert net.state_dict()["features.0.0.weight"].shape == (32, 4, 3, 3)


# -- S2S --------------------------------------------------------------------------------------------
def _expected_state_shapes(cfg: S2SConfig, model: S2S, n: int, h: int, w: int) -> list[tuple[int, ...]]:
    skips = model.encoder.out_channels
    shapes = [(n, cfg.hidden, h // 32, w // 32)]
    if cfg.skip_memory:
        shapes += [(n, skips[level], h // 2 ** (level + 1), w // 2 ** (level + 1)) for level in MEMORY_LEVELS]
    return shapes


@pytest.mark.parametrize("name", list(S2S_VARIANTS))
def test_every_variant_shapes_and_state_layout(name: str) -> None:
    cfg = get_s2s_config(name)
    n, h, w = 2, 64, 96
    with torch.device("meta"):  # full-size networks, shapes only (no memory, no arithmetic)
        model = S2S(cfg)
        state = model.initial_state(torch.zeros(n, 3, h, w), torch.zeros(n, 1, h, w))
        out = model.step(torch.zeros(n, 3, h, w), state)
    assert model.stride == 32 and model.cfg is cfg
    expected = _expected_state_shapes(cfg, model, n, h, w)
    assert len(state) == len(out.state) == cfg.num_states == (3 if cfg.skip_memory else 1)
    for (h0, c0), (h1, c1), shape in zip(state, out.state, expected, strict=True):
        assert tuple(h0.shape) == tuple(c0.shape) == tuple(h1.shape) == tuple(c1.shape) == shape
    assert tuple(out.mask_logits.shape) == (n, 1, h, w)
    if cfg.distance_classes:
        assert tuple(out.distance_logits.shape) == (n, 42, h, w)
    else:
        assert out.distance_logits is None
    with pytest.raises(ValueError, match="multiples of 32"):
        model.step(torch.zeros(n, 3, 48, 96, device="meta"), state)
    with pytest.raises(ValueError, match="states"):
        model.step(torch.zeros(n, 3, h, w, device="meta"), state[:1] * 2)


def test_variant_family() -> None:
    s2s, dist, pp = (get_s2s_config(k) for k in ("s2s", "s2s-dist", "s2spp"))
    assert (s2s.skip_memory, s2s.distance_classes) == (False, 0)
    assert (dist.skip_memory, dist.distance_classes) == (False, 42)
    assert (pp.skip_memory, pp.distance_classes) == (True, 42)
    assert pp.num_states > s2s.num_states
    with torch.device("meta"):
        base, with_dist = S2S(s2s), S2S(dist)
    shared = {k: v.shape for k, v in base.state_dict().items() if not k.startswith("heads.")}
    assert shared == {k: v.shape for k, v in with_dist.state_dict().items() if not k.startswith("heads.")}
    for name in ("s2s", "s2s-dist", "s2spp"):
        light = get_s2s_config(f"{name}-mnv2")
        assert light.encoder == "mobilenetv2"
        assert (light.skip_memory, light.distance_classes) == (S2S_VARIANTS[name].skip_memory,
                                                              S2S_VARIANTS[name].distance_classes)
    assert get_s2s_config("S2SPP_mnv2", hidden=8).hidden == 8
    with pytest.raises(KeyError, match="s2spp-mnv2"):
        get_s2s_config("s2s-xl")


def _tiny(name: str) -> S2S:
    cfg = get_s2s_config(name, encoder_width=0.125, hidden=8, fc_channels=16,
                         decoder_channels=(16, 8, 8, 8, 8))
    torch.manual_seed(0)
    return S2S(cfg).eval()


@pytest.mark.parametrize("name", ["s2spp", "s2spp-mnv2", "s2s"])
def test_state_is_carried(name: str) -> None:
    model = _tiny(name)
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 1, 3, 64, 64, generator=g)
    mask_a = torch.zeros(1, 1, 64, 64)
    mask_a[..., 10:40, 20:50] = 1
    mask_b = torch.zeros(1, 1, 64, 64)
    mask_b[..., 30:60, 0:20] = 1
    with torch.no_grad():
        state_a, state_b = model.initial_state(frames[0], mask_a), model.initial_state(frames[0], mask_b)
        first_a = model.step(frames[1], state_a)
        first_b = model.step(frames[1], state_b)
        again = model.step(frames[1], state_a)
        second = model.step(frames[2], first_a.state)
        fresh = model.step(frames[2], state_a)
    assert torch.equal(first_a.mask_logits, again.mask_logits)  # deterministic, state not mutated
    assert not torch.allclose(first_a.mask_logits, first_b.mask_logits)  # the first mask matters
    assert not torch.allclose(second.mask_logits, fresh.mask_logits)  # the previous step's state matters
    for (h0, c0), (h1, c1) in zip(state_a, first_a.state, strict=True):
        assert not torch.equal(h0, h1) and not torch.equal(c0, c1)


@pytest.mark.parametrize("name", ["s2spp-mnv2", "s2s-dist"])
def test_shared_features_equal_per_object_encoding(name: str) -> None:
    """Objects of one frame may share one encoder pass (``features``): same output as encoding
    the frame once per object."""
    model = _tiny(name)
    g = torch.Generator().manual_seed(1)
    frame0, frame1 = torch.randn(2, 1, 3, 64, 96, generator=g)
    masks = (torch.rand(3, 1, 64, 96, generator=g) > 0.5).float()
    with torch.no_grad():
        state = model.initial_state(frame0.expand(3, -1, -1, -1), masks)
        per_object = model.step(frame1.expand(3, -1, -1, -1), state)
        shared = model.step(None, state, features=model.encode(frame1))
    assert torch.allclose(shared.mask_logits, per_object.mask_logits, atol=1e-5)
    for (h0, c0), (h1, c1) in zip(shared.state, per_object.state, strict=True):
        assert torch.allclose(h0, h1, atol=1e-5) and torch.allclose(c0, c1, atol=1e-5)
    with pytest.raises(ValueError, match="image or its features"):
        model.step(None, state)


def test_gradients_reach_every_part_and_norms_thaw() -> None:
    model = _tiny("s2spp").train()
    assert thaw_batch_norm(model) > 0  # the VGG norms, encoder and initializer
    image, mask = torch.randn(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    state = model.initial_state(image, mask)
    out = model.step(image, state)
    out = model.step(image, out.state)
    (out.mask_logits.mean() + out.distance_logits.mean()).backward()
    for prefix in ("initializer.", "encoder.", "encoder_head.", "bottleneck_lstm.", "skip_lstms.1.", "decoder.",
                   "heads.distance."):
        grads = [p.grad for k, p in model.named_parameters() if k.startswith(prefix)]
        assert grads and all(g is not None for g in grads), prefix
    freeze_batch_norm(model)
    assert set(model.state_dict()) == set(_tiny("s2spp").state_dict())


def test_mask_is_input_as_float_and_shape_checked() -> None:
    model = _tiny("s2s")
    image = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        as_bool = model.initial_state(image, torch.ones(1, 1, 32, 64, dtype=torch.bool))
        as_float = model.initial_state(image, torch.ones(1, 1, 32, 64))
    assert all(torch.equal(a, b) for pa, pb in zip(as_bool, as_float, strict=True) for a, b in zip(pa, pb,
                                                                                                  strict=True))
    with pytest.raises(ValueError, match="mask"):
        model.initial_state(image, torch.ones(1, 32, 64))
    assert math.prod(model.step(image, as_float).mask_logits.shape) == 32 * 64
