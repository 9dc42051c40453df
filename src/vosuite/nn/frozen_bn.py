"""Batch normalisation with frozen statistics and affine parameters.

All DeAOT encoders (MobileNetV2, ResNet-50) use this layer in place of ``nn.BatchNorm2d``
(aot-benchmark ``MODEL_FREEZE_BN = True``). The four tensors are buffers, not parameters, and
carry the state_dict names of ``nn.BatchNorm2d`` (``weight``, ``bias``, ``running_mean``,
``running_var``) so ImageNet / aot-benchmark checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel.

    Without autograd the layer calls ``F.batch_norm`` (a single fused kernel; this is the path
    that produced the reference outputs). When the input requires grad it uses the algebraically
    equal scale/offset form, which has different float rounding.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        # Initialised so that running_var + eps == 1, i.e. an identity layer.
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W]
        if not x.requires_grad:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
            )
        scale = self.weight * (self.running_var + self.eps).rsqrt()  # [C]
        offset = self.bias - self.running_mean * scale  # [C]
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + offset.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def thaw_batch_norm(module: nn.Module, momentum: float = 0.1) -> int:
    """Replace every :class:`FrozenBatchNorm2d` under ``module`` by a trainable ``nn.BatchNorm2d``
    holding the same statistics and affine terms (for training an encoder from scratch, where
    identity "frozen" norms leave a deep network unnormalised). Returns the number replaced."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, FrozenBatchNorm2d):
            bn = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=momentum).to(child.weight.device)
            with torch.no_grad():
                bn.weight.copy_(child.weight)
                bn.bias.copy_(child.bias)
                bn.running_mean.copy_(child.running_mean)
                bn.running_var.copy_(child.running_var)
            setattr(module, name, bn)
            count += 1
        else:
            count += thaw_batch_norm(child, momentum)
    return count


def freeze_batch_norm(module: nn.Module) -> int:
    """The inverse of :func:`thaw_batch_norm`: every ``nn.BatchNorm2d`` becomes a
    :class:`FrozenBatchNorm2d` with its running statistics, so the state_dict has the inference
    layout (no ``num_batches_tracked``) and the eval-mode output is unchanged. Returns the count."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps).to(child.running_mean.device)
            with torch.no_grad():
                frozen.weight.copy_(child.weight.detach() if child.affine else torch.ones_like(frozen.weight))
                frozen.bias.copy_(child.bias.detach() if child.affine else torch.zeros_like(frozen.bias))
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
            count += 1
        else:
            count += freeze_batch_norm(child)
    return count
