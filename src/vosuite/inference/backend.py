"""What runs a network's per-frame graphs: a backend handed to an inference core.

The eager backend is the network itself (its methods are the graphs). Another runtime supplies an
object with the same methods, e.g. :mod:`vosuite.onnx.runtime`'s sessions; the cores call these
methods only through the backend, and everything else (memory rules, identity embedding, merging)
on the network.
"""

from __future__ import annotations

from typing import Protocol

import torch

from vosuite.models.s2s import S2SOutput, S2SState
from vosuite.nn.gpm import LayerCurrent, LayerMemory


class DeAOTBackend(Protocol):
    """DeAOT's per-frame graphs (:class:`~vosuite.models.deaot.DeAOT` has them)."""

    def encode_image(self, img: torch.Tensor) -> list[torch.Tensor]:
        """img [1, 3, H, W] normalised -> the four encoder maps."""

    def propagate(self, feat16: torch.Tensor, long_term: list[LayerMemory] | None = None,
                  short_term: list[LayerMemory] | None = None, ref_id_emb: torch.Tensor | None = None,
                  return_attn: bool = False) -> tuple[list[torch.Tensor], list[LayerCurrent], list[LayerMemory]]:
        """A frame against the memory, or (``ref_id_emb``) a reference frame against itself."""

    def decode(self, outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> torch.Tensor:
        """GPM outputs + encoder maps -> ID logits."""


class S2SBackend(Protocol):
    """S2S's per-frame graphs (:class:`~vosuite.models.s2s.S2S` has them)."""

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image [N, 3, H, W] -> the encoder's maps."""

    def step(self, image: torch.Tensor | None, state: S2SState, features: list[torch.Tensor] | None = None
             ) -> S2SOutput:
        """One recurrent step of every object."""

    def initial_state(self, image: torch.Tensor, mask: torch.Tensor) -> S2SState:
        """The recurrent states of objects starting at this frame."""
