"""DeAOT training (``method: deaot``): aot-benchmark's clip training of a DeAOT variant.

The clip forward is :mod:`~vosuite.training.methods.deaot.clip_forward`; per frame the loss is
0.5 bootstrapped CE (top-k 15 % after a linear ramp over hard_mining_ratio * total) + 0.5 soft
Jaccard on the logits bilinearly resized to the label size (:mod:`~vosuite.training.methods.deaot.losses`);
the loss is the mean over the propagated frames and the batch, plus the reference frame's own
loss weighted by ``aux_loss_weight * max(aux_steps - step, 0) / aux_steps``
(``aux_steps = aux_loss_ratio * total``). After ``seq_training_start_ratio * total`` steps the
network's own predictions become memory, with detached identity embeddings, and the
``patch_wise_id_bank`` gets rate 0 (TRAIN_SEQ_TRAINING_FREEZE_PARAMS).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.inference.memory import MemoryConfig
from vosuite.models.deaot import DeAOT, get_config
from vosuite.nn.frozen_bn import thaw_batch_norm
from vosuite.options import DEFAULT_MAX_MEMORY_FRAMES
from vosuite.registry import get_spec
from vosuite.training.methods.base import Method, check_encoder_norm
from vosuite.training.methods.deaot.clip_forward import ClipForward, ClipPlan, shuffle_matrices
from vosuite.training.methods.deaot.losses import AOTLoss, LossConfig
from vosuite.training.transplant import transplant

#: Encoder parameter prefixes frozen by TRAIN_ENCODER_FREEZE_AT (1: stem, 2: + first stage).
FREEZE_STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "mobilenetv2": (("encoder.features.0.",), ("encoder.features.1.", "encoder.features.2.", "encoder.features.3.")),
    "resnet50": (("encoder.conv1.", "encoder.bn1."), ("encoder.layer1.",)),
}
#: Train-time long-term gap when the config leaves it unset (aot-benchmark: 9999; DeAOT-L: 2).
DEFAULT_TRAIN_LONG_TERM_GAP = {"deaot-l": 2, "r50-deaot-l": 2}


@dataclass
class DeAOTOptions:
    """The ``deaot:`` section (aot-benchmark ``configs/default.py`` names in comments)."""

    aux_loss_weight: float = 1.0  # TRAIN_AUX_LOSS_WEIGHT (reference frame's own prediction)
    aux_loss_ratio: float = 1.0  # TRAIN_AUX_LOSS_RATIO: the aux weight decays to 0 over ratio * total
    top_k_percent: float = 0.15  # TRAIN_TOP_K_PERCENT_PIXELS
    hard_mining_ratio: float = 0.5  # TRAIN_HARD_MINING_RATIO
    seq_training_start_ratio: float = 0.5  # TRAIN_SEQ_TRAINING_START_RATIO: then predictions feed memory
    seq_training_freeze: list[str] = field(default_factory=lambda: ["patch_wise_id_bank"])
    long_term_gap: int | None = None  # TRAIN_LONG_TERM_MEM_GAP; None: 9999 (deaot-l: 2)
    max_memory_frames: int | None = DEFAULT_MAX_MEMORY_FRAMES  # the inference cap, applied in training too
    id_shuffle: bool = True  # random identity assignment per clip (restart_engine(..., True))


def freeze_encoder(model: DeAOT, freeze_at: int) -> int:
    """Stop gradients of the first ``freeze_at`` encoder stages (aot-benchmark ``freeze``); returns
    the number of frozen tensors."""
    stages = FREEZE_STAGES.get(model.cfg.encoder, ())
    return _freeze(model, tuple(p for stage in stages[:max(freeze_at, 0)] for p in stage))


def _freeze(model: DeAOT, prefixes: tuple[str, ...]) -> int:
    """Stop gradients of the parameters under ``prefixes``; the number of them."""
    frozen = [param for name, param in model.named_parameters() if prefixes and name.startswith(prefixes)]
    for param in frozen:
        param.requires_grad_(False)
    return len(frozen)


def freeze_prefixes(model: DeAOT, prefixes: tuple[str, ...]) -> int:
    """Stop gradients of every parameter whose name starts with one of ``prefixes`` (``model.frozen_prefixes``);
    an InputError when a prefix matches none. Returns the number of frozen tensors."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            raise InputError(f"model.frozen_prefixes: no parameter of {model.cfg.name} starts with {prefix!r}")
    return _freeze(model, tuple(prefixes))


def init_encoder(model: DeAOT, name: str) -> None:
    """Load pretrained encoder weights (``model.encoder_init``) into a MobileNetV2 DeAOT, with their
    batch-norm statistics (kept frozen unless ``model.encoder_norm: batch``)."""
    from vosuite.checkpoints.imagenet import load_encoder_init

    if model.cfg.encoder != "mobilenetv2":
        raise InputError(f"model.encoder_init {name}: MobileNetV2 weights, but {model.cfg.name} has a "
                         f"{model.cfg.encoder} encoder")
    weights = load_encoder_init(model.encoder, name)
    print(f"model.encoder_init {name}: {len(weights.state_dict)} encoder tensors from {weights.source} "
          f"({weights.release or 'sha256 ' + weights.sha256[:12]})", file=sys.stderr, flush=True)


def build_trainable_deaot(config) -> DeAOT:
    """The ``model`` section's DeAOT variant (with its initial weights and ``init_from``), encoder stages frozen
    (``encoder_freeze_at``), batch norms trainable with ``encoder_norm: batch``, in train mode."""
    if config.model.encoder_init and config.model.checkpoint:
        raise InputError("model.encoder_init starts a new model; model.checkpoint already holds an encoder")
    model = create_model(config.model.name, weights=config.model.checkpoint)
    if config.model.encoder_init:
        init_encoder(model, config.model.encoder_init)
    if config.model.init_from:
        report = transplant(model, config.model.init_from, tuple(config.model.init_prefixes))
        print(f"model.init_from {config.model.init_from}: {len(report.copied)} tensors, "
              f"{report.fraction:.0%} of the weights", file=sys.stderr, flush=True)
    freeze_encoder(model, config.model.encoder_freeze_at)
    freeze_prefixes(model, tuple(config.model.frozen_prefixes))
    if config.model.encoder_norm == "batch":
        thaw_batch_norm(model.encoder)
    return model.train()


def check_crop_size(config) -> None:
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


class DeAOTMethod(Method):
    """AOT-style clip training of a DeAOT variant (see the module docstring)."""

    name = "deaot"
    Options = DeAOTOptions

    def __init__(self, config) -> None:
        super().__init__(config)
        if get_spec(config.model.name).family != "deaot":
            raise InputError(f"method deaot trains DeAOT variants, not {config.model.name} (use method: s2s)")
        check_crop_size(config)
        check_encoder_norm(config)
        options, total = self.options, config.train.total_steps
        self.loss = AOTLoss(total, LossConfig(top_k_percent=options.top_k_percent,
                                              hard_mining_ratio=options.hard_mining_ratio))
        self.seq_start = int(options.seq_training_start_ratio * total)
        self.aux_steps = total * options.aux_loss_ratio + 1e-5

    def build_model(self) -> DeAOT:
        return build_trainable_deaot(self.config)

    def freezable_keys(self) -> list[str]:
        """Parameter name parts whose rate is 0 during sequential training."""
        return list(self.options.seq_training_freeze)

    def freeze_active(self, step: int) -> bool:
        """Whether sequential training (predictions as memory, frozen ID bank) is on at ``step``."""
        return step >= self.seq_start

    def aux_weight(self, step: int) -> float:
        """aot-benchmark's decaying weight of the reference frame's loss."""
        return self.options.aux_loss_weight * max(self.aux_steps - step, 0.0) / self.aux_steps

    def memory_config(self, model: DeAOT) -> MemoryConfig:
        """Train-time memory rules: the configured (or the variant's training) gap, skip 1, the cap."""
        gap = self.options.long_term_gap
        if gap is None:
            gap = DEFAULT_TRAIN_LONG_TERM_GAP.get(model.cfg.name.removesuffix("-deform"), 9999)
        return MemoryConfig(long_term_gap=gap, short_term_skip=1, max_memory_frames=self.options.max_memory_frames)

    def frame_loss(self, logits: torch.Tensor, labels: torch.Tensor, step: int, obj_nums: list[int],
                   align_corners: bool) -> torch.Tensor:
        """Mean AOT loss of one frame over the batch (logits resized to the labels)."""
        up = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=align_corners)
        return self.loss(up.float(), labels, step, obj_nums).mean()

    def clip_forward(self, model: DeAOT, batch: Mapping[str, object], step: int,
                     with_attention: bool = False) -> ClipForward:
        """The clip forward of ``batch`` at ``step`` (identity shuffle, freeze_id) and its plan."""
        labels = batch["labels"]
        shuffle = None
        if self.options.id_shuffle:
            shuffle = shuffle_matrices(list(batch["index"]), model.cfg.num_ids, self.config.train.seed)
            shuffle = shuffle.to(batch["frames"])
        return ClipForward(model, labels, [int(n) for n in batch["obj_num"]], shuffle,
                           freeze_id=self.freeze_active(step))

    def training_step(self, model: DeAOT, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch of clips and its parts (plain floats) for the logs."""
        frames, labels = batch["frames"], batch["labels"]
        obj_nums = [int(n) for n in batch["obj_num"]]
        corners = model.cfg.align_corners
        seq = self.freeze_active(step)
        aux_weight = self.aux_weight(step)
        plan = ClipPlan(teacher_forcing=not seq, memory=self.memory_config(model), with_aux=aux_weight > 0)
        out = self.clip_forward(model, batch, step).run(frames, plan)
        pred_loss = torch.stack([self.frame_loss(r, labels[:, i + 1], step, obj_nums, corners)
                                 for i, r in enumerate(out.logits)]).mean()
        logs = {"pred_loss": float(pred_loss.detach()), "aux_weight": aux_weight,
                "hard_fraction": self.loss.fraction(step), "seq_training": float(seq)}
        loss = pred_loss
        if out.reference_logits is not None:
            aux_loss = self.frame_loss(out.reference_logits, labels[:, 0], step, obj_nums, corners)
            loss = loss + aux_weight * aux_loss
            logs["aux_loss"] = float(aux_loss.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs
