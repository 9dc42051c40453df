"""aot-benchmark's learning-rate schedule (``utils/learning.py``: ``adjust_learning_rate``) and
parameter groups (``get_trainable_params``).

The rate is a pure function of the step, so resuming needs only the step: linear warm-up from
``min_lr`` to ``lr`` over ``warmup_ratio * total_steps`` steps, then poly decay
``min_lr + (lr - min_lr) * (1 - t / (T + 1)) ** power`` (or cosine) over the rest; parameters
under ``encoder.`` get ``(rate - min_lr) * encoder_lr_ratio + min_lr``; frozen groups get 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

ENCODER_PREFIX = "encoder."


def learning_rate(step: int, base_lr: float, min_lr: float, total_steps: int, warmup_steps: float,
                  power: float = 0.9, cosine: bool = False) -> float:
    """The rate at ``step`` (aot-benchmark ``adjust_learning_rate`` with restart = 1)."""
    if step < warmup_steps:
        return min_lr + (base_lr - min_lr) * step / warmup_steps
    itr, max_itr = step - warmup_steps, total_steps - warmup_steps
    if cosine:
        return min_lr + (base_lr - min_lr) * (math.cos(math.pi * itr / (max_itr + 1)) + 1.0) * 0.5
    return min_lr + (base_lr - min_lr) * (1 - itr / (max_itr + 1)) ** power


def _no_decay(name: str, param: torch.Tensor, no_decay_keys: Sequence[str]) -> bool:
    """1-D tensors (norms, biases; encoder BNs are frozen) and the exempted keys get no weight decay."""
    return param.ndim == 1 or any(key in name for key in no_decay_keys)


def param_groups(model: nn.Module, weight_decay: float, no_decay_keys: Sequence[str],
                 freezable: Sequence[str] = ()) -> list[dict[str, object]]:
    """Trainable parameters split by (encoder?, weight decay?, freezable?), each group named
    ``"<encoder|body>.<decay|no_decay>[.frozen]"``; AdamW's ``weight_decay`` is set per group."""
    groups: dict[str, dict[str, object]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not _no_decay(name, param, no_decay_keys)
        parts = ["encoder" if name.startswith(ENCODER_PREFIX) else "body", "decay" if decay else "no_decay"]
        if any(key in name for key in freezable):
            parts.append("frozen")
        key = ".".join(parts)
        group = groups.setdefault(key, {"name": key, "params": [], "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(param)
    return list(groups.values())


@dataclass(frozen=True)
class Schedule:
    """The schedule of one run; :meth:`apply` sets every group's rate (and decay when frozen)."""

    base_lr: float
    min_lr: float
    total_steps: int
    warmup_ratio: float
    power: float = 0.9
    cosine: bool = False
    encoder_lr_ratio: float = 1.0

    def lr(self, step: int) -> float:
        """The base rate at ``step``."""
        return learning_rate(step, self.base_lr, self.min_lr, self.total_steps,
                             self.warmup_ratio * self.total_steps, self.power, self.cosine)

    def apply(self, optimizer: torch.optim.Optimizer, step: int, freeze: bool = False,
              weight_decay: float = 0.0) -> float:
        """Set the rates for ``step``; with ``freeze`` the ``*.frozen`` groups get rate and decay 0
        (restored to ``weight_decay`` otherwise). Returns the base rate."""
        now = self.lr(step)
        for group in optimizer.param_groups:
            name = str(group.get("name", ""))
            lr = now
            if name.startswith("encoder") and self.encoder_lr_ratio != 1.0:
                lr = (now - self.min_lr) * self.encoder_lr_ratio + self.min_lr
            if name.endswith(".frozen"):
                decays = ".decay" in name and not freeze
                group["weight_decay"] = weight_decay if decays else 0.0
                lr = 0.0 if freeze else lr
            group["lr"] = lr
        return now
