"""VGG-16 feature encoder (Simonyan & Zisserman, ICLR 2015, Table 1 configuration D), the S2S /
S2S++ backbone.

Thirteen 3x3 convolutions (padding 1) with ReLU in five blocks of 2, 2, 3, 3, 3, each block ending
in a 2x2 max-pool; ``forward`` returns the output of every block *after* its pool, as RS2S
``networks.py`` (``VGGUNet``) does:

    stride 2: 64 ch, stride 4: 128 ch, stride 8: 256 ch, stride 16: 512 ch, stride 32: 512 ch

(channels times ``width``). H and W must be multiples of 32 for the five pools to halve exactly.

Parameter names are those of torchvision's ``vgg16().features`` (``features.0.weight``,
``features.2.weight``, ... ``features.28.weight``) without norms, and of ``vgg16_bn().features``
with them, so ImageNet VGG-16 weights (which the papers start from, and which vosuite does not ship)
load by name (``num_batches_tracked`` dropped). ``norm`` (default :class:`FrozenBatchNorm2d`, an
identity until trained) puts a norm layer after every convolution: training from scratch needs it
(``thaw_batch_norm`` makes it trainable); ``norm=None`` is the plain VGG-16 of the papers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vosuite.nn.frozen_bn import FrozenBatchNorm2d

NormLayer = Callable[[int], nn.Module]

#: Output channels of the convolutions of the five blocks (configuration D).
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16(nn.Module):
    """VGG-16 convolutional part returning the 5 pooled block outputs (see the module docstring).

    ``in_channels``: 3 for an RGB encoder, 4 for the S2S initializer (RGB + mask);
    ``width``: channel multiplier (1.0 is VGG-16); ``norm``: layer after every conv, or None.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0,
                 norm: NormLayer | None = FrozenBatchNorm2d) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        out_channels: list[int] = []
        self._pool_indices: list[int] = []
        channels = in_channels
        for block in VGG16_BLOCKS:
            for base in block:
                out = max(1, int(round(base * width)))
                layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
                if norm is not None:
                    layers.append(norm(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
            self._pool_indices.append(len(layers))
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            out_channels.append(channels)
        self.features = nn.Sequential(*layers)
        self.out_channels = tuple(out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation (fan_out, as torchvision's VGG), zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: [N, in_channels, H, W]
        outs = []
        start = 0
        for pool in self._pool_indices:
            for i in range(start, pool + 1):
                x = self.features[i](x)
            outs.append(x)
            start = pool + 1
        return outs  # [N,64,H/2], [N,128,H/4], [N,256,H/8], [N,512,H/16], [N,512,H/32]
