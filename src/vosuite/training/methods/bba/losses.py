"""The self-supervised losses of Betrayed by Attention (Ding et al. 2023, arXiv 2311.17893, Sec. 3.3;
SSL-UVOS ``src/train_RGB_cluster.py``), as the original computes them (pinned by fixture part B).

Both read the spatio-temporal block's outputs (:class:`vosuite.models.bba.STOutput`):
``attn_temporal`` [B, T*hw, T*hw] (heads averaged, CLS removed, rows not renormalised) and the
slots [B, T, hw, C]. ``points`` patch indices (the same for every frame and batch item; the
original draws 8 with ``torch.randperm``) are the queries.

* **Semantic consistency** (:func:`slot_loss`): for each query (frame t, point n) and each target
  frame t' (t' = t included), the target frame's patches are ranked by the query's attention;
  the ``positives`` (30) most attended and the ``negatives`` (200) least attended. With s the
  cosine similarity of slot tokens (L2-normalised, eps 1e-12):
  ``mean(relu(0.9 - s_pos)) + mean(relu(s_neg - 0.1))``, two separate means.
* **Dynamic motion consistency with entropy weighting** (:func:`motion_loss`): each token's
  *row* is its attention over all T*hw patches. Within the query's own frame, the rows of the 10
  most attended patches are positives and of the 50 least attended negatives; rows are
  L1-normalised (x / max(sum |x|, 1e-12)), and compared with the query's normalised row q by
  ``sim(r) = sum_c q_c log(r_c + 1e-10)``. Each (negative, positive) pair gives
  ``relu(sim_neg - sim_pos + 1)``; the 8 points are weighted by a softmax over them of
  ``sum p log(p + 1e-10)`` of their own rows (minus the entropy: focused queries count more),
  summed over points and averaged over (B, T, negatives, positives). The query row and the
  weights are detached; positives and negatives keep their gradient. (The original also builds a
  weighted positive centre that it never uses; it is left out.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SLOT_POSITIVES, SLOT_NEGATIVES = 30, 200
MOTION_POSITIVES, MOTION_NEGATIVES = 10, 50
POSITIVE_MARGIN, NEGATIVE_MARGIN, MOTION_MARGIN = 0.9, 0.1, 1.0
_EPS_NORM, _EPS_LOG = 1e-12, 1e-10


def query_attention(attn_temporal: torch.Tensor, points: torch.Tensor, frames: int) -> torch.Tensor:
    """Rows of the sampled queries, split by target frame: [B, T (query frame), P, T (target), hw]."""
    b, n, _ = attn_temporal.shape
    hw = n // frames
    rows = attn_temporal.view(b, frames, hw, frames, hw)[:, :, points]  # [B, T, P, T, hw]
    return rows


def ranking(attention: torch.Tensor) -> torch.Tensor:
    """Patch indices in descending order of attention along the last axis (the original's sort)."""
    return torch.sort(attention.detach(), dim=-1, descending=True).indices


def slot_loss(attn_temporal: torch.Tensor, slots: torch.Tensor, points: torch.Tensor,
              positives: int = SLOT_POSITIVES, negatives: int = SLOT_NEGATIVES) -> torch.Tensor:
    """The semantic-consistency loss (module docstring). attn_temporal [B, T*hw, T*hw]; slots [B, T, hw, C]."""
    b, t, hw, c = slots.shape
    order = ranking(query_attention(attn_temporal, points, t))  # [B, T, P, T, hw]
    tokens = F.normalize(slots, dim=-1, eps=_EPS_NORM)  # [B, T, hw, C]
    queries = tokens[:, :, points]  # [B, T, P, C]
    # similarity of every query to every patch of every frame: [B, T, P, T', hw]
    similarity = torch.einsum("btpc,bshc->btpsh", queries, tokens)
    pos = similarity.gather(-1, order[..., :positives])
    neg = similarity.gather(-1, order[..., -negatives:])
    return F.relu(POSITIVE_MARGIN - pos).mean() + F.relu(neg - NEGATIVE_MARGIN).mean()


def _l1_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.abs().sum(-1, keepdim=True).clamp_min(_EPS_NORM)


def motion_loss(attn_temporal: torch.Tensor, points: torch.Tensor, frames: int,
                positives: int = MOTION_POSITIVES, negatives: int = MOTION_NEGATIVES) -> torch.Tensor:
    """The dynamic motion-consistency loss with entropy weighting (module docstring)."""
    b, n, _ = attn_temporal.shape
    hw = n // frames
    rows = attn_temporal.view(b, frames, hw, n)  # every token's row over all T*hw patches
    own = torch.stack([rows[:, f, :, f * hw:(f + 1) * hw] for f in range(frames)], dim=1)  # [B, T, hw, hw]
    order = ranking(own[:, :, points])  # [B, T, P, hw]: same-frame ranking of each query
    query = _l1_normalise(rows[:, :, points].detach())  # [B, T, P, T*hw]
    weight = torch.softmax((query * torch.log(query + _EPS_LOG)).sum(-1), dim=-1)  # [B, T, P]
    batch = torch.arange(b, device=rows.device).view(b, 1, 1, 1)
    frame = torch.arange(frames, device=rows.device).view(1, frames, 1, 1)

    def similarity(index: torch.Tensor) -> torch.Tensor:  # index [B, T, P, K] -> [B, T, P, K]
        candidates = torch.log(_l1_normalise(rows[batch, frame, index]) + _EPS_LOG)  # [B, T, P, K, T*hw]
        return (query.unsqueeze(3) * candidates).sum(-1)

    pos = similarity(order[..., :positives])  # [B, T, P, 10]
    neg = similarity(order[..., -negatives:])  # [B, T, P, 50]
    pairs = F.relu(neg.unsqueeze(-1) - pos.unsqueeze(-2) + MOTION_MARGIN)  # [B, T, P, 50, 10]
    return (pairs * weight[..., None, None]).sum(2).mean()
