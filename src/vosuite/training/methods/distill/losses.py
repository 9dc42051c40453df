"""Distillation losses of Truong et al. 2024 ("Self-supervised Video Object Segmentation with
Distillation Learning of Deformable Attention", arXiv 2401.13937), as documented assumptions.

The paper's full text could not be obtained; what is known (abstract, summaries): a large teacher
passes its *intermediate attention maps* to the student through a loss based on **Centered Kernel
Alignment** (CKA), and the *probability distributions of its logits* through an **intra-object**
and an **inter-object** loss; the baseline it beats is standard logit KD. Every formula below is
therefore an assumption with its source, and every choice is an argument:

* :func:`attention_cka_loss`: ``L_att = 1 - CKA(A_teacher, A_student)``, CKA of Kornblith et al.
  2019 ("Similarity of Neural Network Representations Revisited", ICML, Eq. 3-5): centred HSIC
  normalised, with a linear kernel (default) or an RBF kernel whose bandwidth is the median
  pairwise distance (their Sec. 4, ``sigma = 1 x median``). Samples are attention *rows* (the
  queries: tokens of the same stride-16 grid in both networks), features their weights over the
  memory, so teacher and student may attend to different numbers of keys (CKA compares n x n Gram
  matrices). ``max_rows`` sampled query rows bound the cost (n^2 memory).
* :func:`relation_losses`: relations of ``p = softmax(logits / tau)`` as in DIST (Huang et al.
  2022, "Knowledge Distillation from A Stronger Teacher", NeurIPS, Eq. 4-7): **inter-object** =
  1 - the Pearson correlation between student and teacher probabilities *across the object
  channels* (background included) at each pixel, averaged over pixels; **intra-object** = 1 - the
  Pearson correlation *across the pixels* of each object channel, averaged over channels; both
  times ``tau^2``. A ``form="kl"`` option uses KL divergences instead (inter: per pixel over the
  channels, Hinton et al. 2015; intra: per channel over the pixels, the channel-wise distillation
  of Shu et al. 2021, ICCV).
* :func:`logit_kd_loss`: standard KD, ``tau^2 KL(p_teacher || p_student)`` per pixel over the
  channels (Hinton et al. 2015), the paper's baseline.

Logits are [B, C, H, W] with ``obj_nums[b] + 1`` live channels in sample b (the others ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Kernels of :func:`cka`.
CKA_KERNELS = ("linear", "rbf")
#: Forms of :func:`relation_losses`.
RELATION_FORMS = ("pearson", "kl")
_EPS = 1e-8


# ---------------------------------------------------------------------------------------------
# CKA (Kornblith et al. 2019)
# ---------------------------------------------------------------------------------------------

def centre_gram(gram: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T / n: rows and columns of the Gram matrix [n, n] centred."""
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


def rbf_gram(x: torch.Tensor, sigma_factor: float = 1.0) -> torch.Tensor:
    """exp(-|x_i - x_j|^2 / (2 sigma^2)) [n, n] with sigma = ``sigma_factor`` x the median distance
    between distinct samples (the mean of the two middle ones for an even count, as numpy's)."""
    squared = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1)  # [n, n], exact zeros on the diagonal
    off_diagonal = squared[~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)]
    sigma = sigma_factor * torch.quantile(off_diagonal.clamp_min(_EPS).sqrt(), 0.5)
    return torch.exp(-squared / (2 * sigma**2))


def hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741 - the paper's names
    """The (biased) HSIC estimate tr(K H L H) / (n - 1)^2 of two Gram matrices [n, n]."""
    n = k.shape[0]
    return (centre_gram(k) * centre_gram(l)).sum() / (n - 1) ** 2


def cka(x: torch.Tensor, y: torch.Tensor, kernel: str = "linear", sigma_factor: float = 1.0) -> torch.Tensor:
    """CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for x [n, p], y [n, q] (same n samples).

    Linear kernel: computed as ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) on centred features
    (Kornblith et al. Eq. 5, equal to the HSIC form; cheaper when p, q < n)."""
    if kernel == "linear":
        xc, yc = x - x.mean(0, keepdim=True), y - y.mean(0, keepdim=True)
        cross = (yc.transpose(0, 1) @ xc).pow(2).sum()
        return cross / ((xc.transpose(0, 1) @ xc).norm() * (yc.transpose(0, 1) @ yc).norm()).clamp_min(_EPS)
    if kernel == "rbf":
        k, l = rbf_gram(x, sigma_factor), rbf_gram(y, sigma_factor)  # noqa: E741
        return hsic(k, l) / (hsic(k, k) * hsic(l, l)).sqrt().clamp_min(_EPS)
    raise ValueError(f"unknown CKA kernel {kernel!r}; known: {', '.join(CKA_KERNELS)}")


def attention_rows(attention: torch.Tensor, query_dim: int) -> torch.Tensor:
    """Attention weights [N, H, ...] -> per sample the query rows with every head's weights as
    features: [N, queries, H * keys]. ``query_dim`` is the queries' axis (2 for long-term maps
    [N, H, hw, K], 3 for short-term window maps [N, H, slots, hw])."""
    if query_dim == 3:
        attention = attention.transpose(2, 3)
    n, heads, queries, keys = attention.shape
    return attention.permute(0, 2, 1, 3).reshape(n, queries, heads * keys)


def attention_cka_loss(teacher: torch.Tensor, student: torch.Tensor, query_dim: int = 2, kernel: str = "linear",
                       max_rows: int | None = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """``1 - CKA`` between teacher and student attention maps of the same queries, averaged over the
    batch (see the module docstring). ``max_rows`` query rows are sampled (the same ones for both
    networks; without replacement, from ``generator``) when there are more."""
    rows_t, rows_s = attention_rows(teacher.detach(), query_dim), attention_rows(student, query_dim)
    if rows_t.shape[:2] != rows_s.shape[:2]:
        raise ValueError(f"teacher and student attend from different queries: {tuple(rows_t.shape[:2])} "
                         f"vs {tuple(rows_s.shape[:2])}")
    queries = rows_t.shape[1]
    if max_rows is not None and queries > max_rows:
        pick = torch.randperm(queries, generator=generator)[:max_rows].to(rows_t.device)
        rows_t, rows_s = rows_t[:, pick], rows_s[:, pick]
    similarity = torch.stack([cka(t, s, kernel) for t, s in zip(rows_t, rows_s, strict=True)])
    return 1 - similarity.mean()


# ---------------------------------------------------------------------------------------------
# Relations of the logits' probabilities (DIST, Huang et al. 2022) and plain KD
# ---------------------------------------------------------------------------------------------

def pearson(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (DIST's centred cosine similarity)."""
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + _EPS)


def _live(logits: torch.Tensor, obj_nums: Sequence[int] | None) -> list[torch.Tensor]:
    """Per sample, its live channels as [C_b, P] (P = H*W)."""
    flat = logits.flatten(2)
    channels = [flat.shape[1]] * flat.shape[0] if obj_nums is None else [int(n) + 1 for n in obj_nums]
    return [flat[b, :c] for b, c in enumerate(channels)]


def relation_losses(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0, form: str = "pearson",
                    obj_nums: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_inter, L_intra) of student and teacher logits [B, C, H, W] (module docstring), ``tau^2`` scaled."""
    if form not in RELATION_FORMS:
        raise ValueError(f"unknown relation form {form!r}; known: {', '.join(RELATION_FORMS)}")
    inter, intra = [], []
    for s, t in zip(_live(student, obj_nums), _live(teacher.detach(), obj_nums), strict=True):  # [C, P]
        if form == "pearson":
            p_s, p_t = torch.softmax(s / tau, dim=0), torch.softmax(t / tau, dim=0)
            inter.append(1 - pearson(p_s, p_t, dim=0).mean())  # across channels, per pixel
            intra.append(1 - pearson(p_s, p_t, dim=1).mean())  # across pixels, per channel
        else:
            inter.append(_kl(t / tau, s / tau, dim=0).mean())
            intra.append(_kl(t / tau, s / tau, dim=1).mean())
    scale = tau**2
    return scale * torch.stack(inter).mean(), scale * torch.stack(intra).mean()


def _kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, dim: int) -> torch.Tensor:
    """KL(softmax(t) || softmax(s)) along ``dim``."""
    log_t = F.log_softmax(teacher_logits, dim=dim)
    return (log_t.exp() * (log_t - F.log_softmax(student_logits, dim=dim))).sum(dim)


def logit_kd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0,
                  obj_nums: Sequence[int] | None = None) -> torch.Tensor:
    """Standard KD: ``tau^2`` x the mean over pixels of KL(p_teacher || p_student) over the channels."""
    losses = [_kl(t / tau, s / tau, dim=0).mean()
              for s, t in zip(_live(student, obj_nums), _live(teacher.detach(), obj_nums), strict=True)]
    return tau**2 * torch.stack(losses).mean()
