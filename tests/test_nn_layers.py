"""Position embedding, FrozenBatchNorm2d and backbone shape/naming checks."""

from __future__ import annotations

import math

import pytest
import torch

from vosuite.nn.frozen_bn import FrozenBatchNorm2d
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.position import SinePositionEmbedding, sine_position_embedding
from vosuite.nn.resnet import resnet50


def test_sine_position_embedding_vs_float64_formula():
    h, w, f = 31, 54, 128
    got = sine_position_embedding(h, w, f)
    assert got.shape == (1, 2 * f, h, w) and got.dtype == torch.float32
    ys = torch.arange(h, dtype=torch.float64) / (h - 1 + 1e-6) * 2 * math.pi
    xs = torch.arange(w, dtype=torch.float64) / (w - 1 + 1e-6) * 2 * math.pi
    i = torch.arange(f, dtype=torch.float64)
    freq = 10000.0 ** (2 * torch.div(i, 2, rounding_mode="floor") / f)
    even = (i % 2 == 0)[:, None, None]

    def axis(a, along_y):
        arg = a[None, :, None] / freq[:, None, None] if along_y else a[None, None, :] / freq[:, None, None]
        arg = arg.expand(f, h, w)
        return torch.where(even, arg.sin(), arg.cos())

    expected = torch.cat([axis(ys, True), axis(xs, False)])[None]
    assert (got.double() - expected).abs().max() < 2e-6
    assert torch.equal(SinePositionEmbedding(f)(torch.zeros(2, 3, h, w)), got)


@pytest.mark.parametrize("grad", [False, True])
def test_frozen_batchnorm_formula(grad):
    torch.manual_seed(0)
    bn = FrozenBatchNorm2d(5)
    bn.weight.uniform_(0.5, 2)
    bn.bias.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.1, 3)
    x = torch.randn(2, 5, 4, 3, requires_grad=grad)
    got = bn(x)
    xd = x.detach().double()
    shape = (1, -1, 1, 1)
    expected = (xd - bn.running_mean.double().view(shape)) / torch.sqrt(bn.running_var.double().view(shape) + 1e-5)
    expected = expected * bn.weight.double().view(shape) + bn.bias.double().view(shape)
    assert torch.allclose(got.detach().double(), expected, atol=1e-5)
    assert sorted(bn.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    assert not list(bn.parameters())


def test_frozen_batchnorm_identity_init():
    x = torch.randn(1, 3, 2, 2)
    assert torch.allclose(FrozenBatchNorm2d(3)(x), x, atol=1e-6)


def test_thawed_batchnorm_trains_and_freezes_back_to_the_same_function():
    """thaw -> train-mode steps move the statistics -> freeze: eval outputs are unchanged and the
    state_dict is the inference layout again."""
    from vosuite.nn.frozen_bn import freeze_batch_norm, thaw_batch_norm
    from vosuite.nn.mobilenetv2 import MobileNetV2

    torch.manual_seed(0)
    net = MobileNetV2(output_stride=16)
    frozen_keys = sorted(net.state_dict())
    x = torch.randn(2, 3, 33, 33)
    before = [f.clone() for f in net.eval()(x)]
    count = thaw_batch_norm(net)
    assert count == sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(net.eval()(x), before, strict=True))
    net.train()
    for _ in range(2):
        net(torch.randn(4, 3, 33, 33) * 3 + 1)  # batch statistics update the running ones
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    thawed_eval = [f.clone() for f in net.eval()(x)]
    assert freeze_batch_norm(net) == count
    assert sorted(net.state_dict()) == frozen_keys
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(net(x), thawed_eval, strict=True))


def test_mobilenetv2_shapes_strides_and_dilation():
    net = MobileNetV2(output_stride=16).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 129, 161))
    assert [tuple(o.shape) for o in outs] == [(1, 24, 33, 41), (1, 32, 17, 21), (1, 96, 9, 11), (1, 1280, 9, 11)]
    dw = [net.features[i].conv[1][0] for i in range(2, 18)]  # depthwise convs of blocks 2..17
    assert [c.stride[0] for c in dw] == [2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert [net.features[i].conv[1][0].dilation[0] for i in range(14, 18)] == [1, 2, 2, 2]
    keys = net.state_dict()
    assert "features.1.conv.0.0.weight" in keys and "features.1.conv.2.running_var" in keys
    assert "features.18.1.running_mean" in keys and "features.19.0.weight" not in keys


def test_resnet50_shapes_and_names():
    net = resnet50(output_stride=16).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 65, 97))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 17, 25), (1, 512, 9, 13), (1, 1024, 5, 7), (1, 1024, 5, 7)]
    keys = net.state_dict()
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
              "layer2.3.conv3.weight", "layer3.5.bn3.running_mean"):
        assert k in keys
    assert not any(k.startswith(("layer4", "fc")) for k in keys)
    assert sum(v.numel() for k, v in net.named_parameters()) == 8_512_704  # conv weights of stem + layer1..3
