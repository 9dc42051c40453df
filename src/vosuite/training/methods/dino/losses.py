"""DINO's loss, centring and schedules (Caron et al. 2021, arXiv 2104.14294; ``DINOLoss`` and
``cosine_scheduler`` of facebookresearch/dino).

* Eq. (1) / Algorithm 1: ``H(P_t, P_s) = -sum_k P_t[k] log P_s[k]`` with
  ``P_s = softmax(g_s / tau_s)`` and ``P_t = softmax((g_t - C) / tau_t)`` (Eq. 4's centring,
  then sharpening by the low teacher temperature), summed over every pair of a teacher global
  view and a *different* student view, the sum divided by the number of pairs, each term a mean
  over the batch.
* Eq. (4): ``C <- m C + (1 - m) mean_batch(g_t)`` after each step, ``m`` = 0.9.
* The teacher temperature warms up linearly from ``warmup_teacher_temp`` (0.04) to
  ``teacher_temp`` (0.04 by default, up to 0.07) over the warm-up steps, then stays.
* Sec. 3.1: the teacher's EMA momentum follows a cosine from ``momentum_teacher`` (0.996) to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, student_temp: float,
              teacher_temp: float, global_views: int = 2) -> torch.Tensor:
    """The mean cross-entropy of Eq. (1).

    Args:
        student: [V * B, K] the student's outputs of every view, view-major (globals first).
        teacher: [G * B, K] the teacher's outputs of the G global views, view-major.
        center: [1, K] the centre C.
    """
    views = student.shape[0] // (teacher.shape[0] // global_views)
    log_student = F.log_softmax(student / student_temp, dim=-1).chunk(views)
    targets = F.softmax((teacher - center) / teacher_temp, dim=-1).detach().chunk(global_views)
    total, pairs = student.new_zeros(()), 0
    for t_index, target in enumerate(targets):
        for s_index, log_probs in enumerate(log_student):
            if s_index == t_index:
                continue  # the same view: no loss
            total = total + torch.sum(-target * log_probs, dim=-1).mean()
            pairs += 1
    return total / pairs


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """Eq. (4): ``m C + (1 - m)`` the batch mean of the teacher's outputs [G * B, K] -> [1, K]."""
    return center * momentum + teacher.mean(dim=0, keepdim=True) * (1 - momentum)


def teacher_temperature(step: int, warmup_steps: int, warmup_temp: float = 0.04, final_temp: float = 0.04) -> float:
    """Linear warm-up of tau_t from ``warmup_temp`` to ``final_temp`` over ``warmup_steps`` (DINO's
    ``np.linspace`` per epoch, here per step), then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return final_temp
    return warmup_temp + (final_temp - warmup_temp) * step / max(warmup_steps - 1, 1)


def teacher_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """DINO's cosine schedule: ``final + (base - final) (1 + cos(pi step / total)) / 2``."""
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * step / max(total_steps, 1)))
