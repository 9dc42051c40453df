"""AOT's training losses: bootstrapped (top-k) cross-entropy and soft Jaccard, weighted 0.5 / 0.5.

Source: Yang et al., "Associating Objects with Transformers for Video Object Segmentation",
NeurIPS 2021, Sec. 4 (implementation details: "a combination of bootstrapped cross-entropy loss
and soft Jaccard loss"), and aot-benchmark ``networks/layers/loss.py`` (``CrossEntropyLoss``,
``SoftJaccordLoss``) with ``networks/engines/aot_engine.py`` (``_init_losses``,
``calculate_current_loss``) and ``configs/default.py`` (TRAIN_TOP_K_PERCENT_PIXELS = 0.15,
TRAIN_HARD_MINING_RATIO = 0.5).

Shapes: logits [B, C, H, W] (C = 1 + objects, background first), labels [B, H, W] or [B, 1, H, W]
int64 with ``ignore_index`` (255) for void. Every loss returns one value per sample, [B]; AOT
restricts sample b's logits to its first ``obj_nums[b] + 1`` channels, which ``obj_nums`` does here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255
JACCARD_EPS = 1e-6  # aot-benchmark tversky_loss epsilon


def hard_pixel_fraction(step: float, top_k_percent: float = 0.15, warmup_steps: float = 50_000) -> float:
    """The fraction of hardest pixels the bootstrapped CE keeps at training ``step``.

    aot-benchmark ``CrossEntropyLoss``: ratio = min(1, step / warmup) and fraction =
    ratio * top_k + (1 - ratio): every pixel (plain CE) at step 0, decaying linearly to the top
    ``top_k_percent`` (15 %) at ``warmup_steps`` (TRAIN_HARD_MINING_RATIO x TRAIN_TOTAL_STEPS =
    0.5 x 100k) and after. ``warmup_steps`` <= 0 keeps the top k from the start. (AOT adds 1e-5 to
    the warm-up to avoid a division by zero; that changes nothing measurable and is left out.)
    """
    if not 0 < top_k_percent <= 1:
        raise ValueError(f"top_k_percent must be in (0, 1], got {top_k_percent}")
    if warmup_steps <= 0:
        return top_k_percent
    ratio = min(1.0, step / warmup_steps)
    return ratio * top_k_percent + (1.0 - ratio)


def _flat_labels(labels: torch.Tensor) -> torch.Tensor:
    """[B, H, W] or [B, 1, H, W] -> [B, H*W] int64."""
    if labels.ndim == 4:
        labels = labels[:, 0]
    return labels.reshape(labels.shape[0], -1).long()


def _per_sample(
    logits: torch.Tensor, labels: torch.Tensor, obj_nums: Sequence[int] | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits [1, C_b, P], labels [P]) for each sample, channels cut to obj_num + 1 when given."""
    flat_logits = logits.reshape(logits.shape[0], logits.shape[1], -1)  # [B, C, P]
    flat_labels = _flat_labels(labels)  # [B, P]
    for b in range(logits.shape[0]):
        channels = logits.shape[1] if obj_nums is None else int(obj_nums[b]) + 1
        yield flat_logits[b : b + 1, :channels], flat_labels[b]


def bootstrapped_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    fraction: float = 1.0,
    obj_nums: Sequence[int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Mean cross-entropy of the ``int(fraction * H * W)`` hardest pixels of each sample, [B].

    Void pixels have zero loss but still count in H * W, as in aot-benchmark (per-pixel
    ``nn.CrossEntropyLoss(ignore_index=255, reduction="none")`` then ``topk``); ``fraction`` = 1 (the
    start of the schedule) is the mean over all pixels with void counted as zero, as there.
    """
    losses = []
    for sample_logits, sample_labels in _per_sample(logits, labels, obj_nums):
        pixel_losses = F.cross_entropy(sample_logits, sample_labels[None], ignore_index=ignore_index, reduction="none")[
            0
        ]  # [P]
        losses.append(top_k_mean(pixel_losses, max(1, int(fraction * pixel_losses.numel()))))
    return torch.stack(losses)


def top_k_mean(values: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` largest of ``values`` [P], as ``topk(values, k).values.mean()``: all of them
    when k = P; else through the k-th largest value t (``kthvalue``, several times faster than
    ``topk`` for large k): (sum of the values above t + (k - their count) * t) / k, the same value
    whatever the ties, with the gradient on the values above t and t's occurrences shared."""
    count = values.numel()
    if k >= count:
        return values.mean()
    if k <= count // 8:
        return torch.topk(values, k).values.mean()
    threshold = torch.kthvalue(values.detach(), count - k + 1).values
    above = values > threshold
    ties = (values == threshold).to(values.dtype)
    tie_share = (k - above.sum()).to(values.dtype) / ties.sum()
    return ((values * above).sum() + (values * ties).sum() * tie_share) / k


def soft_jaccard_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    obj_nums: Sequence[int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Soft Jaccard (IoU) loss from softmax probabilities, [B] (aot-benchmark ``SoftJaccordLoss``).

    Per sample, for every class c (background included) present in the valid labels:
    1 - sum(p g) / (sum(p) + sum(g) - sum(p g) + 1e-6), with p the softmax probability of c and g
    its indicator, over the non-void pixels; the loss is the mean over the present classes (0 when
    none is present). This is AOT's Tversky loss with alpha = beta = 1.
    """
    losses = []
    for sample_logits, sample_labels in _per_sample(logits, labels, obj_nums):
        valid = sample_labels != ignore_index  # [P]
        probs = F.softmax(sample_logits[0], dim=0)[:, valid]  # [C, P']
        truth = F.one_hot(sample_labels[valid], probs.shape[0]).T.to(probs.dtype)  # [C, P']
        present = truth.sum(dim=1) > 0  # [C]
        intersection = (probs * truth).sum(dim=1)
        union = probs.sum(dim=1) + truth.sum(dim=1) - intersection
        per_class = 1 - intersection / (union + JACCARD_EPS)
        losses.append(per_class[present].mean() if present.any() else probs.sum() * 0)
    return torch.stack(losses)


@dataclass(frozen=True)
class LossConfig:
    """AOT's loss recipe: 0.5 x bootstrapped CE + 0.5 x soft Jaccard, top 15 % after half of training."""

    top_k_percent: float = 0.15
    hard_mining_ratio: float = 0.5
    ce_weight: float = 0.5
    jaccard_weight: float = 0.5


class AOTLoss(nn.Module):
    """The combined per-frame loss of AOT, [B]: ``ce_weight * CE_topk(step) + jaccard_weight * Jaccard``."""

    def __init__(self, total_steps: int, config: LossConfig = LossConfig()) -> None:
        super().__init__()
        self.config = config
        self.warmup_steps = config.hard_mining_ratio * total_steps

    def fraction(self, step: float) -> float:
        """The fraction of hardest pixels kept at ``step``."""
        return hard_pixel_fraction(step, self.config.top_k_percent, self.warmup_steps)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, step: float, obj_nums: Sequence[int] | None = None
    ) -> torch.Tensor:
        ce = bootstrapped_cross_entropy(logits, labels, self.fraction(step), obj_nums)
        jaccard = soft_jaccard_loss(logits, labels, obj_nums)
        return self.config.ce_weight * ce + self.config.jaccard_weight * jaccard
