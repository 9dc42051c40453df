"""FPN segmentation head of AOT/DeAOT (the papers' implementation details; aot-benchmark ``fpn.py``).

The propagated stride-16 embedding is refined with the encoder's stride-16, 8 and 4 features
(each through a 1x1 adapter conv, added, then 3x3 conv + GroupNorm(8) + ReLU, bilinear
upsampling in between) and mapped to ``out_dim`` ID logits at stride 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvGN(nn.Module):
    """conv (same padding, with bias) -> GroupNorm."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        self.gn = nn.GroupNorm(groups, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(self.conv(x))


class FPNSegmentationHead(nn.Module):
    """``forward(inputs, shortcuts)``: ``inputs`` stride-16 maps (concatenated when
    ``decode_intermediate_input``, else only the last is used); ``shortcuts`` the 4 encoder maps."""

    def __init__(self, in_dim: int, out_dim: int, decode_intermediate_input: bool = False, hidden_dim: int = 256,
                 shortcut_dims: tuple[int, ...] = (24, 32, 96, 1280), align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.decode_intermediate_input = decode_intermediate_input
        self.conv_in = ConvGN(in_dim, hidden_dim, 1)
        self.conv_16x = ConvGN(hidden_dim, hidden_dim, 3)
        self.conv_8x = ConvGN(hidden_dim, hidden_dim // 2, 3)
        self.conv_4x = ConvGN(hidden_dim // 2, hidden_dim // 2, 3)
        self.adapter_16x = nn.Conv2d(shortcut_dims[-2], hidden_dim, 1)
        self.adapter_8x = nn.Conv2d(shortcut_dims[-3], hidden_dim, 1)
        self.adapter_4x = nn.Conv2d(shortcut_dims[-4], hidden_dim // 2, 1)
        self.conv_out = nn.Conv2d(hidden_dim // 2, out_dim, 1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _up(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def forward(self, inputs: list[torch.Tensor], shortcuts: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(inputs, dim=1) if self.decode_intermediate_input else inputs[-1]  # [N, in, h16, w16]
        x = F.relu_(self.conv_in(x))
        x = F.relu_(self.conv_16x(self.adapter_16x(shortcuts[-2]) + x))  # [N, hid, h16, w16]
        x = self._up(x, shortcuts[-3])
        x = F.relu_(self.conv_8x(self.adapter_8x(shortcuts[-3]) + x))  # [N, hid/2, h8, w8]
        x = self._up(x, shortcuts[-4])
        x = F.relu_(self.conv_4x(self.adapter_4x(shortcuts[-4]) + x))  # [N, hid/2, h4, w4]
        return self.conv_out(x)  # [N, out_dim, h4, w4]
