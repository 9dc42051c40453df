"""Convolutional LSTM cell (Shi et al., "Convolutional LSTM Network: A Machine Learning Approach
for Precipitation Nowcasting", NeurIPS 2015, Sec. 3.1, Eq. 3), the memory of S2S / S2S++.

With ``*`` a 2-D convolution ("same" padding) and ``[x, h]`` channel concatenation, one step is

    i = sigma(W_i * [x, h] + b_i)        input gate
    f = sigma(W_f * [x, h] + b_f)        forget gate
    o = sigma(W_o * [x, h] + b_o)        output gate
    g = act_g(W_g * [x, h] + b_g)        candidate cell state
    c' = f . c + i . g
    h' = o . act_h(c')

One convolution computes the four pre-activations, split in the order i, f, o, g (the order of
RS2S ``networks.py``). Shi et al.'s Eq. 3 also has peephole terms (``W_c . c``); neither S2S nor
the RS2S code uses them, so they are left out.

``activation`` picks ``act_g`` / ``act_h``:

* ``"standard"``: tanh / tanh, the usual (Shi et al.; PyTorch ``nn.LSTM``) formulation;
* ``"rs2s"``: sigmoid / ReLU, what RS2S ``networks.py`` ``ConvLSTMCell.forward`` computes (its
  comments: tanh replaced by sigmoid for g and by ReLU for the output). This is the variant the
  published S2S++ numbers and weights come from. With non-negative initial states (the S2S
  initializer ends in ReLUs) c stays non-negative, so h' = o . c'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("standard", "rs2s")


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: ``(x [N, C_in, H, W], (h, c) [N, C_h, H, W] each) -> (h', c')``.

    Parameters: ``conv`` (``C_in + C_h -> 4 C_h``, kernel ``kernel_size``, padding ``k // 2``).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, bias: bool = True,
                 activation: str = "standard") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown ConvLSTM activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.activation = activation
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2, bias=bias)

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All-zero (h, c) matching input ``x`` [N, C_in, H, W]."""
        zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state  # [N, C_h, H, W] each
        gates = self.conv(torch.cat([x, h], dim=1))  # [N, 4 C_h, H, W]
        i, f, o, g = gates.chunk(4, dim=1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        if self.activation == "standard":
            c_next = f * c + i * torch.tanh(g)
            h_next = o * torch.tanh(c_next)
        else:  # "rs2s"
            c_next = f * c + i * torch.sigmoid(g)
            h_next = o * F.relu(c_next)
        return h_next, c_next

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden_channels}, activation={self.activation!r}"
