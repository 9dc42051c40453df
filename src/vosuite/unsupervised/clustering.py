"""Object discovery by hierarchical clustering of spatio-temporal attention (Betrayed by Attention,
Ding et al. 2023, arXiv 2311.17893, Sec. 3.4; SSL-UVOS ``eval_oneshot.py``
``mem_efficient_inference`` / ``mem_efficient_hierarchical_cluster``), pinned by fixture part C.

Given per-frame DINO keys [T, C, h, w] of a whole video and the trained spatio-temporal block:

1. **Attention distributions** (:func:`attention_windows`): only the block's ``norm1`` and
   ``attn.qkv`` are used (no residual, no MLP, no CLS). Queries come from every frame, keys only
   from the *key frames* ``arange(T // ratio) * ratio``; per head the logits of a query against all
   key-frame tokens share one softmax over K*hw entries, then the heads are averaged: each token
   becomes a distribution over the K*hw key tokens. Query frames are processed in windows of
   ``window`` (3) frames, so memory stays bounded by one window's [3*hw, K*hw].
2. **Distance** (:func:`kl_distance`): D(p, q) = KL(p||q) + KL(q||p), computed as cross-entropies
   minus self-entropies with no epsilon (as the original); membership is D <= tau.
3. **First level** (:func:`first_level`), per window: every distribution is replaced by the
   L1-normalised sum of the window's distributions within tau of it (itself included); then a
   greedy pass in token order: an unassigned point takes every unassigned point within tau
   (itself included, distances between the smoothed points), their plain mean is a centroid.
4. **Merge** (:func:`merge_level`): the same greedy pass without smoothing over all centroids,
   repeated until a pass no longer reduces their number (at most ``max_passes``).
5. **Assignment** (:func:`assign`): every window's distributions again; each token gets the
   closest centroid (first on ties). The label maps are [T, h, w] with ids 1..K (0 unused).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vosuite.nn.st_block import SpatioTemporalBlock

#: Query frames per window (the original's ``ts``).
WINDOW = 3


def key_frame_indices(frames: int, ratio: int) -> torch.Tensor:
    """The original's key frames ``arange(T // ratio) * ratio`` (trailing frames never are keys:
    T = 21, ratio 10 gives 0 and 10); at least frame 0."""
    return torch.arange(max(frames // ratio, 1)) * ratio


def queries_and_keys(block: SpatioTemporalBlock, keys: torch.Tensor, key_frames: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame DINO keys [T, C, h, w] -> (q [T, heads, hw, d] of every frame, k [K, heads, hw, d]
    of the key frames), through the block's ``norm1`` and ``qkv`` only."""
    t, c, h, w = keys.shape
    heads = block.attn.num_heads
    tokens = block.norm1(keys.flatten(2).transpose(1, 2))  # [T, hw, C]
    qkv = block.attn.qkv(tokens).reshape(t, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1][key_frames]


def window_distributions(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """Queries of some frames [q, heads, hw, d] against key-frame tokens [K, heads, hw, d] -> each
    token's distribution over the K*hw key tokens [q*hw, K*hw] (one softmax per head, heads averaged).

    One head at a time: a [q*hw, d] x [d, K*hw] product and its softmax, summed into the mean, so
    the [q, K, heads, hw, hw] logits of all heads (728 MB per window at 30 x 53 tokens) are never
    held; the softmax's exponentials are most of the cost (docs/benchmarks.md)."""
    n_q, heads, hw, dim = q.shape
    total = None
    for head in range(heads):
        queries = q[:, head].reshape(n_q * hw, dim)  # (q n) c
        keys = k[:, head].reshape(-1, dim)  # (k m) c
        probs = torch.softmax((queries @ keys.T) * scale, dim=-1)
        total = probs if total is None else total.add_(probs)
    return total.div_(heads)


def attention_windows(q: torch.Tensor, k: torch.Tensor, scale: float, window: int = WINDOW
                      ) -> Iterator[tuple[int, torch.Tensor]]:
    """(first frame, distributions [frames*hw, K*hw]) of each window of query frames."""
    for start in range(0, q.shape[0], window):
        yield start, window_distributions(q[start:start + window], k, scale)


def kl_distance(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric KL [n, m] between distributions a [n, c] and b [m, c] (None: a itself):
    cross-entropies minus self-entropies, in the original's order of operations, no epsilon.

    Between a set and itself the two cross-entropy products are transposes of each other
    (``sum_c b[m, c] log a[n, c]`` is entry [m, n] of ``a log a^T``), so one [n x c] x [c x n]
    product serves both: half the cost of the clustering's dominant step (docs/benchmarks.md)."""
    if b is None:
        log_a = torch.log(a)
        entropy = torch.einsum("nc,nc->n", a, log_a)
        cross = torch.einsum("nc,mc->nm", a, log_a)  # [n, n]: sum_c a[n] log a[m]
        return (-cross - cross.T) - (-entropy.unsqueeze(-1) - entropy.unsqueeze(0))
    log_a, log_b = torch.log(a), torch.log(b)
    self_entropy = (-torch.einsum("nc,nc->n", a, log_a).unsqueeze(-1)
                    - torch.einsum("mc,mc->m", b, log_b).unsqueeze(0))
    cross_entropy = -torch.einsum("nc,mc->nm", a, log_b) - torch.einsum("mc,nc->nm", b, log_a)
    return cross_entropy - self_entropy


def greedy_centroids(points: torch.Tensor, tau: float) -> list[torch.Tensor]:
    """One greedy pass in point order: an unassigned point takes every unassigned point within tau
    (itself included); each group's plain mean is a centroid."""
    distance = kl_distance(points)
    free = torch.ones(len(points), dtype=torch.bool, device=points.device)
    centroids = []
    for i in range(len(points)):
        if not free[i]:
            continue
        members = (distance[i] <= tau) & free
        centroids.append(points[members].mean(dim=0))
        free &= ~members
    return centroids


def smooth(points: torch.Tensor, tau: float) -> torch.Tensor:
    """Each distribution replaced by the L1-normalised sum of the distributions within tau of it."""
    near = (kl_distance(points) <= tau).to(points.dtype)
    summed = near @ points
    return summed / summed.sum(dim=1, keepdim=True)


def first_level(windows: Iterator[tuple[int, torch.Tensor]], tau: float) -> tuple[list[torch.Tensor], list[int]]:
    """Centroids of every window (smoothing, then one greedy pass), in window order, and their
    count per window."""
    centroids, counts = [], []
    for _, distributions in windows:
        found = greedy_centroids(smooth(distributions, tau), tau)
        centroids += found
        counts.append(len(found))
    return centroids, counts


def merge_level(centroids: list[torch.Tensor], tau: float, max_passes: int = 10000
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy passes over the centroids until one no longer reduces their number: (final
    centroids [K, c], the centroid set entering each pass)."""
    inputs = []
    current = centroids
    for _ in range(max_passes):
        points = torch.stack(current)
        inputs.append(points)
        merged = greedy_centroids(points, tau)
        if len(merged) == len(points):
            current = merged
            break
        current = merged
    return torch.stack(current), inputs


def assign_window(distributions: torch.Tensor, centroids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One window's label maps [frames, h, w] (long, ids 1..K): each token's closest centroid
    (first on ties)."""
    nearest = torch.argmin(kl_distance(centroids, distributions), dim=0)  # [frames * hw]
    return (nearest + 1).view(-1, *size).cpu()


def assign(windows: Iterator[tuple[int, torch.Tensor]], centroids: torch.Tensor, frames: int, size: tuple[int, int]
           ) -> torch.Tensor:
    """Label maps [T, h, w] of every window (:func:`assign_window`)."""
    labels = torch.zeros(frames, *size, dtype=torch.long)
    for start, distributions in windows:
        window = assign_window(distributions, centroids, size)
        labels[start:start + len(window)] = window
    return labels


@dataclass(frozen=True)
class Discovery:
    """Result of :func:`discover_objects`: labels [T, h, w] (ids 1..K), centroids [K, K_frames*hw],
    first-level counts per window and the centroid set entering each merge pass."""

    labels: torch.Tensor
    centroids: torch.Tensor
    first_level_counts: list[int]
    merge_inputs: list[torch.Tensor]


@torch.no_grad()
def discover_objects(block: SpatioTemporalBlock, keys: torch.Tensor, tau: float = 1.0, ratio: int = 10,
                     window: int = WINDOW, max_passes: int = 10000) -> Discovery:
    """Segment a video's objects without any mask: per-frame DINO keys [T, C, h, w] -> clusters
    (module docstring). ``tau``: the distance threshold (smaller: more, finer objects)."""
    frames, _, h, w = keys.shape
    q, k = queries_and_keys(block, keys, key_frame_indices(frames, ratio))
    scale = block.attn.scale
    centroids, counts = first_level(attention_windows(q, k, scale, window), tau)
    final, inputs = merge_level(centroids, tau, max_passes)
    labels = assign(attention_windows(q, k, scale, window), final, frames, (h, w))
    return Discovery(labels=labels, centroids=final, first_level_counts=counts, merge_inputs=inputs)


def foreground_proposal(border_pixels: dict[int, int], pixels: dict[int, int]) -> int:
    """The single-object rule (DAVIS-2016 output of unsupervised proposals): the proposal whose
    pixels touch the frame border least, as a fraction of its own area over the whole video
    (backgrounds wrap the frame; a salient object sits inside it); ties go to the larger proposal.
    ``border_pixels`` / ``pixels``: proposal id -> count of its pixels on the one-pixel frame
    border / everywhere, summed over the frames."""
    candidates = [pid for pid, count in pixels.items() if count > 0]
    if not candidates:
        raise ValueError("no proposal has any pixel")
    return min(candidates, key=lambda pid: (border_pixels.get(pid, 0) / pixels[pid], -pixels[pid], pid))


def motion_proposal(overlap: dict[int, int], pixels: dict[int, int], moving: int) -> int:
    """The single-object rule fused with motion (a vosuite option, not the paper's): the proposal
    whose pixels over the whole video best overlap the motion-saliency map's, by IoU
    ``overlap / (pixels + moving - overlap)``; ties go to the larger proposal. ``overlap`` /
    ``pixels``: proposal id -> its pixels inside the moving region / everywhere; ``moving``: the
    moving region's pixels; all summed over the frames."""
    candidates = [pid for pid, count in pixels.items() if count > 0]
    if not candidates:
        raise ValueError("no proposal has any pixel")

    def iou(pid: int) -> float:
        inter = overlap.get(pid, 0)
        return inter / max(pixels[pid] + moving - inter, 1)

    return max(candidates, key=lambda pid: (iou(pid), pixels[pid], -pid))


def border_and_area(labels: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """Per proposal id of one label map [H, W]: (pixels on its one-pixel border, pixels)."""
    border = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    ids, counts = np.unique(labels, return_counts=True)
    edge_ids, edge_counts = np.unique(border, return_counts=True)
    return ({int(i): int(c) for i, c in zip(edge_ids, edge_counts, strict=True) if i > 0},
            {int(i): int(c) for i, c in zip(ids, counts, strict=True) if i > 0})
