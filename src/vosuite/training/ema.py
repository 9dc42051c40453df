"""Exponential moving average of the weights (aot-benchmark ``utils/ema.py``).

``decay = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, then
``shadow -= (1 - decay) * (shadow - param)`` for every trainable parameter; aot-benchmark's
trainer uses ``decay = 1 - 1 / (total_steps * TRAIN_EMA_RATIO)`` and updates after each optimiser
step. aot-benchmark freezes every batch norm (MODEL_FREEZE_BN), so it has no statistics to average.
vosuite can train batch norms (``model.encoder_norm=batch``); their running statistics are then
averaged the same way (as timm's ``ModelEmaV2`` averages buffers), so EMA weights go with
statistics of the same horizon instead of the live ones of the last ~10 steps. Integer buffers
(``num_batches_tracked``) are left alone.
"""

from __future__ import annotations

import torch
from torch import nn


def _float_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point buffers by name (batch-norm running means and variances)."""
    return {name: b for name, b in model.named_buffers() if b.is_floating_point()}


def ema_decay(total_steps: int, ema_ratio: float) -> float:
    """aot-benchmark's decay for a run of ``total_steps``: ``1 - 1 / (total_steps * ema_ratio)``."""
    return max(0.0, 1.0 - 1.0 / max(total_steps * ema_ratio, 1.0))


class ExponentialMovingAverage:
    """Shadow copies of ``model``'s trainable parameters, keyed by name (checkpoint-friendly)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError("decay must be between 0 and 1")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        self.buffers = {name: b.detach().clone() for name, b in _float_buffers(model).items()}

    def current_decay(self) -> float:
        """The decay the next update uses (warm-up by the number of updates)."""
        return min(self.decay, (1 + self.num_updates + 1) / (10 + self.num_updates + 1))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step towards ``model``'s current parameters."""
        one_minus = 1.0 - self.current_decay()
        self.num_updates += 1
        params = dict(model.named_parameters())
        for name, shadow in self.shadow.items():
            shadow.sub_(one_minus * (shadow - params[name].detach()))
        buffers = _float_buffers(model)
        for name, average in self.buffers.items():
            average.sub_(one_minus * (average - buffers[name].detach()))

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s parameters with the averages."""
        params = dict(model.named_parameters())
        for name, shadow in self.shadow.items():
            params[name].copy_(shadow)
        buffers = _float_buffers(model)
        for name, average in self.buffers.items():
            buffers[name].copy_(average)

    def state_dict(self) -> dict[str, object]:
        """Plain types and tensors (loadable with ``weights_only=True``)."""
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()},
                "buffers": {k: v.clone() for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, object], model: nn.Module | None = None) -> None:
        """Restore :meth:`state_dict`'s content; the parameter names must match. A state saved
        before statistics were averaged has no ``buffers``: averaging then restarts from
        ``model``'s (the resumed live model's, so pass it after loading its weights)."""
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            raise KeyError("EMA state names differ from the model's trainable parameters")
        buffers = state.get("buffers")
        if buffers is None:
            buffers = {name: b.detach() for name, b in _float_buffers(model).items()} if model is not None else {}
        elif set(buffers) != set(self.buffers):
            raise KeyError("EMA state buffer names differ from the model's floating-point buffers")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        for name, value in buffers.items():
            self.buffers[name].copy_(value)
