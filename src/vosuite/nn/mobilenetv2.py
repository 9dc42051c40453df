"""MobileNetV2 backbone (Sandler et al., CVPR 2018) as the DeAOT-T/S/B/L encoder.

Output stride 16: once the running stride reaches 16, later stages keep stride 1 and dilate their
depthwise convolutions instead (first block of a stage with the previous rate, later blocks with
the new rate), as in aot-benchmark. ``forward`` returns the outputs of four stages:

    stride 4: 24 ch, stride 8: 32 ch, stride 16: 96 ch, stride 16 (dilated): 1280 ch

Parameter names (``features.<i>...``) follow torchvision's MobileNetV2, which is what
aot-benchmark checkpoints contain under ``encoder.``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vosuite.nn.frozen_bn import FrozenBatchNorm2d

NormLayer = Callable[[int], nn.Module]

# expansion t, output channels c, repeats n, stride s
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
# features[a:b] slices that make up the four returned stages
_STAGES = ((0, 4), (4, 7), (7, 14), (14, 19))


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going more than 10% below it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormReLU6(nn.Sequential):
    """conv (no bias) -> norm -> ReLU6; children named 0, 1, 2."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, norm: NormLayer = FrozenBatchNorm2d) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            norm(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expand (if t != 1) -> 3x3 depthwise -> 1x1 linear projection, residual when shapes agree."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, expand_ratio: int,
                 norm: NormLayer = FrozenBatchNorm2d) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormReLU6(in_ch, hidden, kernel_size=1, norm=norm))
        layers += [
            ConvNormReLU6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden, norm=norm),
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            norm(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor returning 4 feature maps (see module docstring)."""

    def __init__(self, output_stride: int = 16, norm: NormLayer = FrozenBatchNorm2d, width_mult: float = 1.0,
                 round_nearest: int = 8) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult, round_nearest)
        last_ch = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvNormReLU6(3, in_ch, stride=2, norm=norm)]
        current_stride, rate = 2, 1
        for t, c, n, s in _SETTINGS:
            if current_stride == output_stride:
                stride, first_dilation = 1, rate
                rate *= s
            else:
                stride, first_dilation = s, 1
                current_stride *= s
            out_ch = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                if i == 0:
                    features.append(InvertedResidual(in_ch, out_ch, stride, first_dilation, t, norm))
                else:
                    features.append(InvertedResidual(in_ch, out_ch, 1, rate, t, norm))
                in_ch = out_ch
        features.append(ConvNormReLU6(in_ch, last_ch, kernel_size=1, norm=norm))
        self.features = nn.Sequential(*features)
        self.out_channels = (24, 32, 96, last_ch) if width_mult == 1.0 else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: [N, 3, H, W]
        outs = []
        for start, stop in _STAGES:
            for i in range(start, stop):
                x = self.features[i](x)
            outs.append(x)
        return outs  # [N,24,H/4], [N,32,H/8], [N,96,H/16], [N,1280,H/16] (ceil for odd sizes)
