"""Method adapters: what the method-agnostic :class:`~vosuite.training.engine.Trainer` needs of a method.

A method provides ``build_model()``, ``training_step(model, batch, step) -> (loss, logs)``,
``freezable_keys(step)`` and ``validate(model, out_dir, threads)``, and registers in
:data:`METHODS`: ``deaot`` (:class:`DeAOTMethod`), ``s2s`` (:class:`~vosuite.training.s2s_method.S2SMethod`).

:class:`DeAOTMethod` is aot-benchmark's clip training (``networks/engines/aot_engine.py``,
``forward`` with ``enable_prev_frame=False``, the default):

* every frame of the clip is encoded at once; the first is the reference: it is propagated
  against itself with its ground-truth identities, which gives the long-term memory and the first
  short-term memory, and an auxiliary loss on its own prediction weighted by
  ``aux_loss_weight * max(aux_steps - step, 0) / aux_steps`` (``aux_steps = aux_loss_ratio * total``);
* every later frame is propagated against the memories and decoded; after each frame but the last
  the short-term memory is that frame with the *ground-truth* identities (teacher forcing) until
  ``seq_training_start_ratio * total`` steps, then with the network's own argmax prediction and
  detached identity embeddings (``freeze_id``) while the ``patch_wise_id_bank`` gets rate 0
  (TRAIN_SEQ_TRAINING_FREEZE_PARAMS); a frame joins the long-term memory every
  ``long_term_gap`` frames (TRAIN_LONG_TERM_MEM_GAP);
* identities are shuffled per clip (a random permutation of ids 1..max_obj_num, background kept);
* per frame: 0.5 bootstrapped CE (top-k 15 % after a linear ramp over hard_mining_ratio * total)
  + 0.5 soft Jaccard on the logits bilinearly resized to the label size; the loss is the mean over
  the propagated frames and the batch, plus the weighted auxiliary loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vosuite.datasets import open_dataset
from vosuite.errors import InputError
from vosuite.metrics.evaluator import EvaluationConfig, Evaluator
from vosuite.models.build import build, model_family
from vosuite.models.deaot import DeAOT, get_config
from vosuite.nn.frozen_bn import thaw_batch_norm
from vosuite.nn.gpm import LayerMemory
from vosuite.segment import Segmenter
from vosuite.training.config import TrainConfig
from vosuite.training.losses import AOTLoss, LossConfig

#: Encoder parameter prefixes frozen by TRAIN_ENCODER_FREEZE_AT (1: stem, 2: + first stage).
FREEZE_STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "mobilenetv2": (("encoder.features.0.",), ("encoder.features.1.", "encoder.features.2.", "encoder.features.3.")),
    "resnet50": (("encoder.conv1.", "encoder.bn1."), ("encoder.layer1.",)),
}
#: Train-time long-term gap when the config leaves it unset (aot-benchmark: 9999; DeAOT-L: 2).
DEFAULT_TRAIN_LONG_TERM_GAP = {"deaot-l": 2, "r50-deaot-l": 2}


class Method(Protocol):
    """What the trainer needs of a method."""

    def build_model(self) -> nn.Module: ...

    def training_step(self, model: nn.Module, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def freezable_keys(self) -> list[str]: ...

    def freeze_active(self, step: int) -> bool: ...

    def validate(self, model: nn.Module, out_dir: Path, threads: int) -> dict[str, float]: ...


# ---------------------------------------------------------------------------------------------
# The clip forward pass
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipPlan:
    """How one clip is propagated."""

    teacher_forcing: bool = True  # GT (True) or the prediction (False) becomes short-term memory
    long_term_gap: int = 9999
    with_aux: bool = True  # decode the reference frame's own prediction (auxiliary loss)


def shuffle_matrices(indices: list[int], num_ids: int, seed: int) -> torch.Tensor:
    """[B, C, C] permutation matrices (background fixed), one per sample, a function of (seed, index)
    only, so that the same sample is shuffled the same way on any rank (aot-benchmark
    ``generate_permute_matrix``)."""
    mats = []
    for index in indices:
        state = np.random.SeedSequence([seed, int(index)]).generate_state(1)[0]
        perm = torch.randperm(num_ids - 1, generator=torch.Generator().manual_seed(int(state))) + 1
        mats.append(torch.eye(num_ids)[torch.cat([torch.zeros(1, dtype=torch.long), perm])])
    return torch.stack(mats)


class ClipForward:
    """aot-benchmark's training propagation of a clip ([B, T, 3, H, W]) with one DeAOT network."""

    def __init__(self, model: DeAOT, labels: torch.Tensor, obj_nums: list[int], shuffle: torch.Tensor | None,
                 freeze_id: bool) -> None:
        self.model, self.labels, self.obj_nums = model, labels, obj_nums
        self.shuffle = shuffle
        self.freeze_id = freeze_id
        live = torch.arange(model.cfg.num_ids, device=labels.device).view(1, -1) <= torch.tensor(
            obj_nums, device=labels.device).view(-1, 1)
        self.dead = ~live[:, :, None, None]  # [B, C, 1, 1]

    def identity(self, label: torch.Tensor) -> torch.Tensor:
        """ID embedding [hw, B, d] of a label map [B, 1, H, W] (shuffled; detached when freeze_id)."""
        one_hot = self.model.one_hot(label)
        if self.shuffle is not None:
            one_hot = torch.einsum("bohw,bot->bthw", one_hot, self.shuffle)
        emb = self.model.id_embedding(one_hot)
        return emb.detach() if self.freeze_id else emb

    def logits(self, outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> torch.Tensor:
        """Stride-4 logits in the real id order, ids above each sample's obj_num masked."""
        raw = self.model.decode(outputs, feats)
        if self.shuffle is not None:
            raw = torch.einsum("bohw,bto->bthw", raw, self.shuffle)
        return raw.masked_fill(self.dead, -1e10 if raw.dtype == torch.float32 else -1e4)

    def predicted_label(self, logits: torch.Tensor) -> torch.Tensor:
        """Argmax label [B, 1, H, W] at the input size (aot-benchmark ``predict_current_mask``)."""
        size = tuple(self.labels.shape[-2:])
        up = F.interpolate(logits.detach(), size=size, mode="bilinear", align_corners=self.model.cfg.align_corners)
        return up.argmax(dim=1, keepdim=True)

    def run(self, frames: torch.Tensor, plan: ClipPlan) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """(reference-frame logits or None, logits of frames 1..T-1), all stride 4."""
        b, t = frames.shape[:2]
        all_feats = self.model.encode_image(frames.flatten(0, 1))
        feats = [[f.view(b, t, *f.shape[1:])[:, i] for f in all_feats] for i in range(t)]
        size_2d = tuple(feats[0][-1].shape[-2:])
        outputs, _, own = self.model.propagate(feats[0][-1], ref_id_emb=self.identity(self.labels[:, 0]))
        aux = self.logits(outputs, feats[0]) if plan.with_aux else None
        long_term, short_term, last_mem = list(own), [m.to_2d(size_2d) for m in own], 0
        results = []
        for i in range(1, t):
            outputs, current, _ = self.model.propagate(feats[i][-1], long_term, short_term)
            results.append(self.logits(outputs, feats[i]))
            if i == t - 1:
                break
            label = self.labels[:, i] if plan.teacher_forcing else self.predicted_label(results[-1])
            memory = self.model.memory_from_current(current, self.identity(label))
            short_term = [m.to_2d(size_2d) for m in memory]
            if i - last_mem >= plan.long_term_gap:
                long_term = [LayerMemory(torch.cat([n.key, o.key]), torch.cat([n.value, o.value]),
                                         torch.cat([n.id_value, o.id_value])) for n, o in zip(memory, long_term,
                                                                                                 strict=True)]
                last_mem = i
        return aux, results


# ---------------------------------------------------------------------------------------------
# The DeAOT method
# ---------------------------------------------------------------------------------------------

def freeze_encoder(model: DeAOT, freeze_at: int) -> int:
    """Stop gradients of the first ``freeze_at`` encoder stages (aot-benchmark ``freeze``); returns
    the number of frozen tensors."""
    stages = FREEZE_STAGES.get(model.cfg.encoder, ())
    prefixes = tuple(p for stage in stages[:max(freeze_at, 0)] for p in stage)
    count = 0
    for name, param in model.named_parameters():
        if prefixes and name.startswith(prefixes):
            param.requires_grad_(False)
            count += 1
    return count


def check_encoder_norm(config: TrainConfig) -> None:
    """``model.encoder_norm`` is ``frozen`` or ``batch``; trainable norms need a fully trained encoder."""
    norm = config.model.encoder_norm
    if norm not in ("frozen", "batch"):
        raise InputError(f"model.encoder_norm {norm!r}: use 'frozen' or 'batch'")
    if norm == "batch" and config.model.encoder_freeze_at > 0:
        raise InputError("model.encoder_norm=batch trains every encoder norm: set model.encoder_freeze_at=0")


def check_crop_size(config: TrainConfig) -> None:
    """Refuse training crops that are not 16 n + 1 pixels for an ``align_corners`` model.

    With ``align_corners=True`` the stride-4 logits line up with the label pixels only when every
    side is 16 n + 1 (aot-benchmark trains at 465 = 16 * 29 + 1; inference snaps frames to such
    sizes). On other sizes the upsampled logits are shifted by a fraction of a pixel that grows
    across the crop; the network learns to compensate, and at inference, where the grid is exact,
    that compensation moves every mask a little each frame. Measured: DeAOT-T-deform from scratch,
    400 steps, DAVIS-16 dev J&F 0.035 at 192x192 crops against 0.237 at 193x193 (docs/benchmarks.md).
    """
    if not get_config(config.model.name).align_corners:
        return
    bad = [side for side in config.data.size if (side - 1) % 16]
    if bad:
        fixed = [16 * round((side - 1) / 16) + 1 for side in config.data.size]
        raise InputError(f"data.size {list(config.data.size)}: an align_corners model needs sides of 16n+1 "
                         f"pixels, e.g. data.size={fixed}")


class DeAOTMethod:
    """AOT-style clip training of a DeAOT variant (see the module docstring)."""

    def __init__(self, config: TrainConfig) -> None:
        if model_family(config.model.name) != "deaot":
            raise InputError(f"method deaot trains DeAOT variants, not {config.model.name} (use method: s2s)")
        check_crop_size(config)
        check_encoder_norm(config)
        self.config = config
        train = config.train
        self.loss = AOTLoss(train.total_steps, LossConfig(top_k_percent=train.top_k_percent,
                                                          hard_mining_ratio=train.hard_mining_ratio))
        self.seq_start = int(train.seq_training_start_ratio * train.total_steps)
        self.aux_steps = train.total_steps * train.aux_loss_ratio + 1e-5

    def build_model(self) -> DeAOT:
        """The variant (with the configured initial weights), encoder stages frozen, in train mode."""
        model = build(self.config.model.name, self.config.model.checkpoint)
        freeze_encoder(model, self.config.model.encoder_freeze_at)
        if self.config.model.encoder_norm == "batch":
            thaw_batch_norm(model.encoder)
        return model.train()

    def freezable_keys(self) -> list[str]:
        """Parameter name parts whose rate is 0 during sequential training."""
        return list(self.config.train.seq_training_freeze)

    def freeze_active(self, step: int) -> bool:
        """Whether sequential training (predictions as memory, frozen ID bank) is on at ``step``."""
        return step >= self.seq_start

    def aux_weight(self, step: int) -> float:
        """aot-benchmark's decaying weight of the reference frame's loss."""
        return self.config.train.aux_loss_weight * max(self.aux_steps - step, 0.0) / self.aux_steps

    def long_term_gap(self, model: DeAOT) -> int:
        gap = self.config.train.long_term_gap
        return gap if gap is not None else DEFAULT_TRAIN_LONG_TERM_GAP.get(model.cfg.name.removesuffix("-deform"),
                                                                            9999)

    def frame_loss(self, logits: torch.Tensor, labels: torch.Tensor, step: int, obj_nums: list[int],
                   align_corners: bool) -> torch.Tensor:
        """Mean AOT loss of one frame over the batch (logits resized to the labels)."""
        up = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=align_corners)
        return self.loss(up.float(), labels, step, obj_nums).mean()

    def training_step(self, model: DeAOT, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch of clips and its parts (plain floats) for the logs."""
        frames, labels = batch["frames"], batch["labels"]
        obj_nums = [int(n) for n in batch["obj_num"]]
        corners = model.cfg.align_corners
        shuffle = None
        if self.config.train.id_shuffle:
            shuffle = shuffle_matrices(list(batch["index"]), model.cfg.num_ids, self.config.train.seed).to(frames)
        seq = self.freeze_active(step)
        aux_weight = self.aux_weight(step)
        plan = ClipPlan(teacher_forcing=not seq, long_term_gap=self.long_term_gap(model), with_aux=aux_weight > 0)
        aux, results = ClipForward(model, labels, obj_nums, shuffle, freeze_id=seq).run(frames, plan)
        pred_loss = torch.stack([self.frame_loss(r, labels[:, i + 1], step, obj_nums, corners)
                                 for i, r in enumerate(results)]).mean()
        logs = {"pred_loss": float(pred_loss.detach()), "aux_weight": aux_weight,
                "hard_fraction": self.loss.fraction(step), "seq_training": float(seq)}
        loss = pred_loss
        if aux is not None:
            aux_loss = self.frame_loss(aux, labels[:, 0], step, obj_nums, corners)
            loss = loss + aux_weight * aux_loss
            logs["aux_loss"] = float(aux_loss.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def validate(self, model: DeAOT, out_dir: Path, threads: int) -> dict[str, float]:
        """J&F of ``model`` on the configured validation videos (predictions under ``out_dir``)."""
        return validate_model(model, self.config, out_dir, threads)


def validate_model(model: nn.Module, config: TrainConfig, out_dir: Path, threads: int) -> dict[str, float]:
    """Predict the validation videos with :class:`~vosuite.segment.Segmenter` (any model family it
    runs, at ``val.size``) and score them with the official-equivalent
    :class:`~vosuite.metrics.evaluator.Evaluator`; returns the global scores."""

    val = config.val
    split = val.split
    if val.videos:
        split_file = out_dir / "videos.txt"
        out_dir.mkdir(parents=True, exist_ok=True)
        split_file.write_text("\n".join(val.videos) + "\n", encoding="utf-8")
        split = str(split_file)
    net = copy.deepcopy(model).eval()
    segmenter = Segmenter(model=net, size=val.size, threads=threads, progress=False)
    segmenter.infer(val.dataset, val.root, out_dir / "pred", split=split, overwrite=True)
    videos = list(open_dataset(val.dataset, val.root, split))
    result = Evaluator(EvaluationConfig(workers=1)).evaluate(videos, out_dir / "pred")
    return {k: float(v) for k, v in result.global_scores().items()}


def _s2s_method(config: TrainConfig) -> Method:
    from vosuite.training.s2s_method import S2SMethod  # imports this module

    return S2SMethod(config)


METHODS: dict[str, type | Callable[[TrainConfig], Method]] = {"deaot": DeAOTMethod, "s2s": _s2s_method}


def make_method(config: TrainConfig) -> Method:
    """The adapter named by ``config.method``."""
    if config.method not in METHODS:
        raise KeyError(f"unknown training method {config.method!r}; known: {', '.join(METHODS)}")
    return METHODS[config.method](config)
