"""The multi-task loss of S2S++ (Azimi et al., ICPR 2020, Sec. III, "multi-task loss"), as the
authors' code computes it (RS2S ``train.py``, ``networks.py``, ``dataloader.py``):

    L = 0.6 * balanced BCE(mask) + 0.2 * CE(distance classes) + 0.2 * (-log soft Jaccard(mask))

per predicted frame (``train.py``: ``lambda1``, ``lambda2``, ``lambda3``); the authors average it
over the predicted frames of a clip (every frame but the first, whose mask feeds the initializer).

* :func:`balanced_bce`: the class-balanced BCE of OSVOS (RS2S ``class_balanced_cross_entropy_loss``):
  positives weighted by the fraction of negatives and vice versa, counted over the whole batch,
  divided by the number of elements.
* :func:`log_jaccard_loss`: ``-log((I + eps) / (U - I + eps))`` with soft intersection
  I = sum(sigmoid(x) g) and U = sum(sigmoid(x)) + sum(g) over the whole batch, eps = 1e-15 (RS2S
  ``JaccardIndexLoss``).
* :func:`distance_classes`: each pixel's binned distance to the object boundary, inside and
  outside (RS2S ``dataloader.distance_map``, 20-pixel border, 1-pixel bins: 42 classes); the
  distance head is trained with plain (unweighted) cross-entropy, mean over pixels.

All functions take tensors and return tensors; the losses return a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DISTANCE_BORDER = 20  # RS2S train.py 'border_pixels'
DISTANCE_BIN = 1  # RS2S train.py 'bin_size'
JACCARD_EPS = 1e-15  # RS2S networks.py EPS


def num_distance_classes(border: int = DISTANCE_BORDER, bin_size: int = DISTANCE_BIN) -> int:
    """K = 2 * (border // bin_size) + 2 (42 for RS2S's 20-pixel border and 1-pixel bins)."""
    return 2 * (border // bin_size) + 2


def _window(t: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    return t.narrow(dim, start, length)


def truncated_squared_distance(source: torch.Tensor, radius: int) -> torch.Tensor:
    """Squared Euclidean distance from every pixel to the nearest True pixel of ``source`` [..., H, W].

    Exact (int32) wherever it is below ``radius**2``; elsewhere some value >= ``radius**2``. Two
    separable passes over shifts of less than ``radius`` (the exact EDT restricted to that window):
    the vertical distance g to the nearest source pixel in each column (``radius`` when none is
    nearer), then min over |dx| < radius of dx^2 + g(x + dx)^2. Pixels beyond the image are not
    sources. Every candidate is a true distance or >= radius^2, hence the exactness below radius^2.
    """
    height, width = source.shape[-2:]
    g = torch.full(source.shape, radius, dtype=torch.int32, device=source.device)  # int16 overflows
    for dy in range(min(radius, height) - 1, 0, -1):  # largest first, so the nearest wins
        n = height - dy
        _window(g, -2, 0, n).masked_fill_(_window(source, -2, dy, n), dy)  # source dy rows below
        _window(g, -2, dy, n).masked_fill_(_window(source, -2, 0, n), dy)  # source dy rows above
    g.masked_fill_(source, 0)
    g2 = g * g  # [..., H, W]
    best = g2.clone()
    for dx in range(1, min(radius, width)):
        n = width - dx
        for target, shifted in ((_window(best, -1, 0, n), _window(g2, -1, dx, n)),
                                (_window(best, -1, dx, n), _window(g2, -1, 0, n))):
            torch.minimum(target, shifted + dx * dx, out=target)
    return best


def distance_classes(mask: torch.Tensor, border: int = DISTANCE_BORDER, bin_size: int = DISTANCE_BIN) -> torch.Tensor:
    """Distance class of every pixel of ``mask`` [..., H, W] (foreground where >= 0.5), int64, same shape.

    With d the Euclidean distance (pixel units, ``scipy.ndimage.distance_transform_edt``
    convention) from a pixel to the nearest pixel of the other class, k = floor(d), T = border //
    bin_size and K = 2T + 2 classes (RS2S ``dataloader.distance_map`` with ``use_bins=True``):

    * background, k <= border: T - k // bin_size (k = 1 -> T - 1 ... k = border -> 0 at 1-px bins);
      background farther away: 0;
    * foreground, k <= border: T + 1 + k // bin_size (k = 1 -> T + 2 ...); farther: 2T + 1.

    With 1-pixel bins classes T and T + 1 never occur (every pixel is >= 1 from the other class).
    A mask without foreground (or without background) has no boundary: every pixel is "far"
    (class 0, or 2T + 1). Computed in torch on the mask's device; each [H, W] slice independently.
    """
    if not 0 < border < 255:
        raise ValueError(f"border must be in 1..254 (the reference stores distances as uint8), got {border}")
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    fg = mask >= 0.5 if mask.dtype != torch.bool else mask
    radius = border + 1  # exact below (border + 1)^2, i.e. wherever floor(d) <= border
    # inside distance: to the nearest background pixel; outside: to the nearest foreground pixel
    squared = truncated_squared_distance(torch.stack([~fg, fg]), radius)  # [2, ..., H, W]
    near = squared < radius * radius
    k = squared.double().sqrt().floor().long() // bin_size  # binned floor(distance)
    t = border // bin_size
    inside = torch.where(near[0], t + 1 + k[0], torch.full_like(k[0], 2 * t + 1))
    outside = torch.where(near[1], t - k[1], torch.zeros_like(k[1]))
    return torch.where(fg, inside, outside)


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced binary cross-entropy (OSVOS; RS2S ``class_balanced_cross_entropy_loss``).

    logits and target [N, 1, H, W] (target foreground where >= 0.5). With n = numel, n+ / n- the
    foreground / background counts over the whole batch and S+ / S- the summed per-pixel BCE over
    them: ``(n- / n * S+ + n+ / n * S-) / n``, a scalar.
    """
    labels = (target >= 0.5).to(logits.dtype)
    per_pixel = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    n = labels.numel()
    n_pos = labels.sum()
    n_neg = n - n_pos
    loss_pos = (per_pixel * labels).sum()
    loss_neg = (per_pixel * (1 - labels)).sum()
    return (n_neg * loss_pos + n_pos * loss_neg) / (n * n)


def log_jaccard_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = JACCARD_EPS) -> torch.Tensor:
    """``-log((I + eps) / (U - I + eps))``, I = sum(sigmoid(logits) g), U = sum(sigmoid(logits)) + sum(g),
    over the whole batch (RS2S ``JaccardIndexLoss``); g = target >= 0.5. A scalar."""
    probs = torch.sigmoid(logits)
    truth = (target >= 0.5).to(probs.dtype)
    intersection = (probs * truth).sum()
    union = probs.sum() + truth.sum()
    return -torch.log((intersection + eps) / (union - intersection + eps))


@dataclass(frozen=True)
class S2SLossConfig:
    """Weights and distance-class settings of RS2S ``train.py`` (lambda1, lambda2, lambda3)."""

    bce_weight: float = 0.6
    distance_weight: float = 0.2
    jaccard_weight: float = 0.2
    border: int = DISTANCE_BORDER
    bin_size: int = DISTANCE_BIN

    @property
    def num_classes(self) -> int:
        return num_distance_classes(self.border, self.bin_size)


class S2SLoss(nn.Module):
    """The per-frame S2S++ loss, a scalar (module docstring). Without distance logits (the S2S
    baseline) the distance term is left out and the other weights stay as they are."""

    def __init__(self, config: S2SLossConfig = S2SLossConfig()) -> None:
        super().__init__()
        self.config = config

    def terms(self, mask_logits: torch.Tensor, target: torch.Tensor, distance_logits: torch.Tensor | None = None,
              distance_target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Unweighted terms: ``bce``, ``jaccard`` and, with distance logits, ``distance``.

        mask_logits [N, 1, H, W]; target [N, 1, H, W] float 0/1; distance_logits [N, K, H, W];
        distance_target [N, H, W] int64 (default: :func:`distance_classes` of ``target``).
        """
        out = {"bce": balanced_bce(mask_logits, target), "jaccard": log_jaccard_loss(mask_logits, target)}
        if distance_logits is not None:
            cfg = self.config
            if distance_logits.shape[1] != cfg.num_classes:
                raise ValueError(f"distance head has {distance_logits.shape[1]} classes, the loss expects "
                                 f"{cfg.num_classes} (border {cfg.border}, bin {cfg.bin_size})")
            if distance_target is None:
                distance_target = distance_classes(target[:, 0], cfg.border, cfg.bin_size)
            out["distance"] = F.cross_entropy(distance_logits, distance_target)
        return out

    def forward(self, mask_logits: torch.Tensor, target: torch.Tensor, distance_logits: torch.Tensor | None = None,
                distance_target: torch.Tensor | None = None) -> torch.Tensor:
        terms = self.terms(mask_logits, target, distance_logits, distance_target)
        weights = {"bce": self.config.bce_weight, "jaccard": self.config.jaccard_weight,
                   "distance": self.config.distance_weight}
        return sum(weights[name] * value for name, value in terms.items())
