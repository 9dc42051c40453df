"""ResNet-50 backbone (He et al., CVPR 2016) as the R50-DeAOT-L encoder.

As in aot-benchmark (following STM), stage 5 (``layer4``) is dropped: ``forward`` returns
``[layer1 (256 ch, stride 4), layer2 (512, stride 8), layer3 (1024, stride 16), layer3 again]``.
With output stride 16 none of the kept stages is dilated. Parameter names follow torchvision
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vosuite.nn.frozen_bn import FrozenBatchNorm2d

NormLayer = Callable[[int], nn.Module]


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride/dilation) -> 1x1 expand (x4), plus (projected) shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, norm: NormLayer = FrozenBatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, dilation=dilation, padding=dilation, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out += shortcut
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet stem + layer1..layer3 with output stride 16 (or 8)."""

    def __init__(self, blocks: tuple[int, ...] = (3, 4, 6, 3), output_stride: int = 16,
                 norm: NormLayer = FrozenBatchNorm2d) -> None:
        super().__init__()
        if output_stride == 16:
            strides, dilations = (1, 2, 2), (1, 1, 1)
        elif output_stride == 8:
            strides, dilations = (1, 2, 1), (1, 1, 2)
        else:
            raise ValueError(f"output_stride must be 8 or 16, not {output_stride}")
        self._in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, blocks[0], strides[0], dilations[0], norm)
        self.layer2 = self._make_layer(128, blocks[1], strides[1], dilations[1], norm)
        self.layer3 = self._make_layer(256, blocks[2], strides[2], dilations[2], norm)
        self.out_channels = (256, 512, 1024, 1024)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan))

    def _make_layer(self, planes: int, num_blocks: int, stride: int, dilation: int,
                    norm: NormLayer) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in_ch != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self._in_ch, planes * 4, 1, stride=stride, bias=False),
                                       norm(planes * 4))
        layers = [Bottleneck(self._in_ch, planes, stride, max(dilation // 2, 1), downsample, norm)]
        self._in_ch = planes * 4
        layers += [Bottleneck(self._in_ch, planes, dilation=dilation, norm=norm) for _ in range(1, num_blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: [N, 3, H, W]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x4 = self.layer1(x)  # [N, 256, H/4, W/4]
        x8 = self.layer2(x4)  # [N, 512, H/8, W/8]
        x16 = self.layer3(x8)  # [N, 1024, H/16, W/16]
        return [x4, x8, x16, x16]


def resnet50(output_stride: int = 16, norm: NormLayer = FrozenBatchNorm2d) -> ResNet:
    """ResNet-50 (blocks 3, 4, 6; the fourth stage is not built)."""
    return ResNet((3, 4, 6, 3), output_stride, norm)
