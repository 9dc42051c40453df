"""Turning logits into probabilities and labels, and merging object groups.

* one group: softmax over the live channels (background + the group's objects), argmax;
* several groups (more than ``max_obj_num`` objects) and S2S's per-object estimates: the soft
  aggregation of STM / aot-benchmark (``soft_logit_aggregation``), see :func:`soft_aggregate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Probability clamp of aot-benchmark's soft aggregation of object groups.
AGGREGATION_EPS = 1e-5


def group_sizes(obj_num: int, max_obj_num: int) -> list[int]:
    """Objects per group: 23 objects with a bank of 10 -> [10, 10, 3]."""
    full, rest = divmod(obj_num, max_obj_num)
    return [max_obj_num] * full + ([rest] if rest else [])


def separate_label(label: torch.Tensor, group: int, max_obj_num: int) -> torch.Tensor:
    """Ids ``10 g + 1 .. 10 g + 10`` of ``label`` renumbered 1..10, everything else 0 (float)."""
    start = group * max_obj_num + 1
    inside = (label >= start) & (label <= start + max_obj_num - 1)
    return torch.where(inside, label - (start - 1), torch.zeros_like(label)).float()


def group_label(label: torch.Tensor, group: int, max_obj_num: int, groups: int) -> torch.Tensor:
    """The label a group's memory is fed: ``label`` itself with one group, else its slice."""
    return separate_label(label, group, max_obj_num) if groups > 1 else label


#: Up to this many channels :func:`argmax_channels` compares channel by channel (one pass each)
#: instead of transposing: 0.25 ms against 3.1 ms for [1, 2, 480, 854] on 2 threads.
CHANNEL_LOOP_MAX = 4


def argmax_channels(prob: torch.Tensor) -> torch.Tensor:
    """Argmax over dim 1 of [N, C, H, W] -> [N, 1, H, W] (ties: the first channel)."""
    channels = prob.shape[1]
    if channels > CHANNEL_LOOP_MAX:
        # argmax over a contiguous last dim is several times faster than over dim 1
        return prob.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).unsqueeze(1)
    best = prob[:, :1]  # [N, 1, H, W]
    label = torch.zeros(best.shape, dtype=torch.long, device=prob.device)
    for channel in range(1, channels):
        candidate = prob[:, channel:channel + 1]
        better = candidate > best  # strictly: a tie keeps the earlier channel
        label = torch.where(better, channel, label)
        best = torch.maximum(best, candidate)
    return label


def single_group_prob(logits: torch.Tensor, obj_num: int, size: tuple[int, int],
                      align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Stride-4 logits [N, num_ids, h, w] -> (softmax of the ``obj_num + 1`` live channels at
    ``size`` [N, 1 + obj_num, H, W], label [N, 1, H, W])."""
    live = F.interpolate(logits[:, :obj_num + 1], size=tuple(size), mode="bilinear", align_corners=align_corners)
    prob = torch.softmax(live, dim=1)
    return prob, argmax_channels(prob)


def logits_to_label(logits: torch.Tensor, obj_num: int, size: tuple[int, int],
                    align_corners: bool = True) -> torch.Tensor:
    """Stride-4 ID logits [N, num_ids, h, w] -> label [N, 1, *size] (long).

    Same result as the reference (mask ids > obj_num with -1e10, bilinear-resize all channels,
    softmax, argmax) but only the ``obj_num + 1`` live channels are resized: the masked channels
    have probability exactly 0, add exact zeros to the softmax sums and can never be the argmax.
    """
    return single_group_prob(logits, obj_num, size, align_corners)[1]


def soft_aggregate(backgrounds: torch.Tensor, foregrounds: torch.Tensor, eps: float = AGGREGATION_EPS
                   ) -> torch.Tensor:
    """The soft aggregation of STM / aot-benchmark (``soft_logit_aggregation``): independent
    estimates merged into one distribution by their odds.

    ``backgrounds`` [N, G, H, W]: G independent background probabilities (their product is the
    merged background); ``foregrounds`` [N, K, H, W]: the objects' probabilities. The merged
    channels are clamped to ``[eps, 1 - eps]``, turned into log-odds and soft-maxed: returns
    [N, 1 + K, H, W] summing to 1 over dim 1 (channel 0 the background).
    """
    background = torch.prod(backgrounds, dim=1, keepdim=True)
    merged = torch.cat([background, foregrounds], dim=1).clamp(eps, 1 - eps)
    return torch.softmax(torch.logit(merged), dim=1)


def aggregate_groups(logits: list[torch.Tensor], obj_nums: list[int], size: tuple[int, int],
                     align_corners: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group stride-4 logits -> (probabilities [1, 1+K, *size], label [1, 1, *size]).

    One group: softmax of the live channels (exactly the original). Several: aot-benchmark's
    ``soft_logit_aggregation`` followed by the evaluator's softmax and argmax; the masked (dead)
    channels are left out, which changes no argmax (their clamped probability 1e-5 is the
    minimum, and background, channel 0, wins any tie at that value).
    """
    if len(logits) == 1:
        return single_group_prob(logits[0], obj_nums[0], size, align_corners)
    backgrounds, foregrounds = [], []
    for raw, n in zip(logits, obj_nums, strict=True):
        prob = single_group_prob(raw, n, size, align_corners)[0]
        backgrounds.append(prob[:, :1])
        foregrounds.append(prob[:, 1:])
    prob = soft_aggregate(torch.cat(backgrounds, dim=1), torch.cat(foregrounds, dim=1))
    return prob, argmax_channels(prob)


def overwrite_with_given(prob: torch.Tensor, label: torch.Tensor, given: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ``given`` [N, 1, H, W] holds an id (> 0), it replaces the prediction: label = that id,
    probabilities one-hot (channels added for new ids). Returns (prob, label)."""
    given = given.to(label.dtype)
    label = torch.where(given > 0, given, label)
    channels = max(prob.shape[1], int(given.max()) + 1)
    if channels > prob.shape[1]:
        prob = torch.cat([prob, prob.new_zeros(prob.shape[0], channels - prob.shape[1], *prob.shape[2:])], dim=1)
    one_hot = (torch.arange(channels, device=label.device).view(1, -1, 1, 1) == label).to(prob.dtype)
    prob = torch.where((given > 0).expand_as(prob), one_hot, prob)
    return prob, label
