"""Distillation of deformable attention (``method: distill``; Truong et al. 2024, arXiv 2401.13937,
as documented assumptions: :mod:`~vosuite.training.methods.distill.losses`).

A frozen teacher (any registered DeAOT model, ``distill.teacher`` + ``distill.teacher_checkpoint``)
and the student (``model.name``, e.g. ``deaot-t-deform``) see the same clip with the same
augmentation. Both propagate it the way they run at inference: the reference frame's mask is the
only mask given, and every later frame's memory is built from the network's *own* prediction
(``ClipPlan(teacher_forcing=False)``), so the student's loss uses no human mask but each clip's
reference mask (the labels of frames 1..T-1 are zeroed before either network sees the clip).

Fully label-free (``reference_masks: pseudo`` or ``teacher``): the reference mask is made
without a human too, from pseudo-objects of a classical segmentation of the clip's first frame
(:mod:`~vosuite.training.data.pseudo_objects`), optionally re-segmented by the teacher on that
frame (:meth:`DistillMethod.teacher_reference`); clips then come from any folder of videos. The
paper does not say how its self-supervised student gets reference masks: both are assumptions.
The loss, on frames 1..T-1::

    att_weight * L_att + inter_weight * L_inter + intra_weight * L_intra
        + kd_weight * L_kd + gt_weight * L_gt

* ``L_att``: ``1 - CKA`` of the GPM memory attention (long-term and short-term, ``maps``) of every
  student layer against the teacher's ``teacher_layer`` (default its last), query rows sampled
  (``cka_rows``), teacher and student may differ in width and in GPM layers;
* ``L_inter`` / ``L_intra``: DIST relations of the probabilities at temperature ``tau``;
* ``L_kd``: standard logit KD (the paper's baseline: set it alone to 1, the others to 0);
* ``L_gt``: AOT's supervised loss on the student's logits (the "label-free + ground truth" arm;
  the only term that reads the labels of frames 1..T-1; 0 by default).

The logs carry each term and ``cka`` (1 - L_att), the student's CKA to the teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.inference.memory import MemoryConfig
from vosuite.models.deaot import DeAOT
from vosuite.nn.gpm import PropagationAttention
from vosuite.options import DEFAULT_MAX_MEMORY_FRAMES
from vosuite.registry import get_spec
from vosuite.training.data.clips import collate_clips
from vosuite.training.data.pseudo_objects import PseudoObjectConfig
from vosuite.training.data.unlabelled import unlabelled_clips
from vosuite.training.methods.base import Method, TrainingData, check_encoder_norm
from vosuite.training.methods.deaot.clip_forward import ClipForward, ClipOutput, ClipPlan, shuffle_matrices
from vosuite.training.methods.deaot.losses import AOTLoss, LossConfig
from vosuite.training.methods.deaot.method import build_trainable_deaot, check_crop_size
from vosuite.training.methods.distill.losses import (
    CKA_KERNELS,
    RELATION_FORMS,
    attention_cka_loss,
    logit_kd_loss,
    relation_losses,
)

#: Attention maps ``maps`` may name, with their query axis (see ``attention_rows``).
ATTENTION_MAPS = {"long_term": 2, "short_term": 3}


@dataclass
class DistillOptions:
    """The ``distill:`` section; its defaults are assumptions (the paper's values are unknown)."""

    teacher: str = "deaot-l"  # a registered DeAOT model
    teacher_checkpoint: str | None = None  # its weights; None: the weights that ship for it
    tau: float = 1.0  # temperature of the logit losses (DIST: 1; Hinton et al.: 1-4)
    att_weight: float = 1.0
    inter_weight: float = 1.0  # DIST beta
    intra_weight: float = 1.0  # DIST gamma
    kd_weight: float = 0.0  # standard KD, the baseline arm
    gt_weight: float = 0.0  # AOT's supervised loss on the student (uses every frame's labels)
    relation_form: str = "pearson"  # or "kl"
    cka_kernel: str = "linear"  # or "rbf"
    cka_rows: int | None = 256  # sampled query rows per map (None: all)
    maps: list[str] = field(default_factory=lambda: ["long_term", "short_term"])
    teacher_layer: int = -1  # the teacher GPM layer every student layer is aligned with
    long_term_gap: int | None = None  # both networks' training-time memory gap (None: 9999)
    max_memory_frames: int | None = DEFAULT_MAX_MEMORY_FRAMES
    id_shuffle: bool = True  # the student's identities shuffled per clip (the teacher's are not)
    # where each clip's reference mask comes from: "labels" (the human mask of its first frame),
    # "pseudo" (pseudo-objects of a classical segmentation of that frame: no human mask at all, any
    # folder of videos), "teacher" (those pseudo-objects re-segmented by the teacher on the frame)
    reference_masks: str = "labels"
    pseudo_objects: PseudoObjectConfig = field(default_factory=PseudoObjectConfig)


#: Sources of the reference masks (``distill.reference_masks``).
REFERENCE_MASKS = ("labels", "pseudo", "teacher")


def check_distill_options(options: DistillOptions) -> None:
    if options.reference_masks not in REFERENCE_MASKS:
        raise InputError(f"distill.reference_masks {options.reference_masks!r}: use {', '.join(REFERENCE_MASKS)}")
    if options.reference_masks != "labels" and options.gt_weight:
        raise InputError("distill.gt_weight needs human labels: use it with distill.reference_masks=labels")
    if options.relation_form not in RELATION_FORMS:
        raise InputError(f"distill.relation_form {options.relation_form!r}: use {' or '.join(RELATION_FORMS)}")
    if options.cka_kernel not in CKA_KERNELS:
        raise InputError(f"distill.cka_kernel {options.cka_kernel!r}: use {' or '.join(CKA_KERNELS)}")
    unknown = [name for name in options.maps if name not in ATTENTION_MAPS]
    if unknown:
        raise InputError(f"distill.maps: unknown {', '.join(unknown)}; known: {', '.join(ATTENTION_MAPS)}")
    if options.tau <= 0:
        raise InputError(f"distill.tau must be positive, got {options.tau}")


class DistillMethod(Method):
    """Teacher-to-student distillation of a DeAOT student (see the module docstring)."""

    name = "distill"
    Options = DistillOptions

    def __init__(self, config) -> None:
        super().__init__(config)
        if get_spec(config.model.name).family != "deaot":
            raise InputError(f"method distill trains DeAOT students, not {config.model.name}")
        if get_spec(self.options.teacher).family != "deaot":
            raise InputError(f"distill.teacher: {self.options.teacher} is not a DeAOT model")
        check_crop_size(config)
        check_encoder_norm(config)
        check_distill_options(self.options)
        self.gt_loss = AOTLoss(config.train.total_steps, LossConfig())
        self.teacher: DeAOT | None = None

    def build_model(self) -> DeAOT:
        """The student (with the configured initial weights), in train mode."""
        return build_trainable_deaot(self.config)

    def build_data(self, model: DeAOT) -> TrainingData:
        """Labelled clips (``reference_masks: labels``), or unlabelled clips of any folder of videos
        whose first frame carries pseudo-objects."""
        if self.options.reference_masks == "labels":
            return super().build_data(model)
        return TrainingData(unlabelled_clips(self.config, reference_objects=self.options.pseudo_objects),
                            collate_clips)

    def auxiliary_modules(self) -> dict[str, nn.Module]:
        """The frozen teacher (the engine keeps it in eval mode, without gradients, out of DDP,
        the EMA and the checkpoints)."""
        weights = self.options.teacher_checkpoint or "default"
        self.teacher = create_model(self.options.teacher, weights=weights)
        return {"teacher": self.teacher}

    def memory_config(self) -> MemoryConfig:
        return MemoryConfig(long_term_gap=self.options.long_term_gap or 9999, short_term_skip=1,
                            max_memory_frames=self.options.max_memory_frames)

    def propagate(self, model: DeAOT, frames: torch.Tensor, reference: torch.Tensor, obj_nums: list[int],
                  shuffle: torch.Tensor | None) -> ClipOutput:
        """``model`` through the clip on its own predictions, attention maps kept."""
        plan = ClipPlan(teacher_forcing=False, memory=self.memory_config(), with_aux=False, with_attention=True)
        return ClipForward(model, reference, obj_nums, shuffle, freeze_id=False).run(frames, plan)

    def training_step(self, model: DeAOT, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        frames, labels = batch["frames"], batch["labels"]
        obj_nums = [int(n) for n in batch["obj_num"]]
        reference = torch.zeros_like(labels)
        reference[:, 0] = labels[:, 0]  # the only mask either network sees
        with torch.no_grad():
            if self.options.reference_masks == "teacher":
                reference[:, 0] = self.teacher_reference(frames[:, 0], reference[:, 0], obj_nums)
            teacher = self.propagate(self.teacher, frames, reference, obj_nums, None)
        shuffle = None
        if self.options.id_shuffle:
            shuffle = shuffle_matrices(list(batch["index"]), model.cfg.num_ids, self.config.train.seed).to(frames)
        student = self.propagate(model, frames, reference, obj_nums, shuffle)
        terms = self.loss_terms(student, teacher, labels, obj_nums, step, model.cfg.align_corners)
        weights = {"att": self.options.att_weight, "inter": self.options.inter_weight,
                   "intra": self.options.intra_weight, "kd": self.options.kd_weight, "gt": self.options.gt_weight}
        loss = sum(weights[name] * value for name, value in terms.items())
        logs = {name: float(value.detach()) for name, value in terms.items()}
        logs.update(loss=float(loss.detach()), cka=1 - logs["att"])
        return loss, logs

    def teacher_reference(self, frame: torch.Tensor, region: torch.Tensor, obj_nums: list[int]) -> torch.Tensor:
        """The teacher's own mask of ``frame`` [B, 3, H, W] given a rough ``region`` [B, 1, H, W]
        (pseudo-objects): the teacher propagates the region from the frame to the frame itself, and
        its argmax over the live objects is the new reference [B, 1, H, W]. An object the teacher
        drops keeps its region, so the object count is unchanged."""
        frames = torch.stack([frame, frame], 1)  # [B, 2, 3, H, W]
        plan = ClipPlan(teacher_forcing=False, memory=self.memory_config(), with_aux=False)
        forward = ClipForward(self.teacher, torch.stack([region, region], 1), obj_nums, None, freeze_id=False)
        label = forward.predicted_label(forward.run(frames, plan).logits[0])  # [B, 1, H, W]
        refined = region.clone()
        for b, count in enumerate(obj_nums):
            if all(bool((label[b] == k).any()) for k in range(1, count + 1)):
                refined[b] = label[b]
        return refined

    def loss_terms(self, student: ClipOutput, teacher: ClipOutput, labels: torch.Tensor, obj_nums: list[int],
                   step: int, align_corners: bool) -> dict[str, torch.Tensor]:
        """Every term, averaged over frames 1..T-1 (terms of weight 0 are still computed for the logs,
        except the supervised one)."""
        options, frames = self.options, len(student.logits)
        sums: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0) + value / frames

        for i in range(frames):
            add("att", self.attention_loss(student.attention[i], teacher.attention[i]))
            inter, intra = relation_losses(student.logits[i], teacher.logits[i], options.tau, options.relation_form,
                                           obj_nums)
            add("inter", inter)
            add("intra", intra)
            add("kd", logit_kd_loss(student.logits[i], teacher.logits[i], options.tau, obj_nums))
            if options.gt_weight:
                target = labels[:, i + 1]
                up = F.interpolate(student.logits[i], size=tuple(target.shape[-2:]), mode="bilinear",
                                   align_corners=align_corners)
                add("gt", self.gt_loss(up.float(), target, step, obj_nums).mean())
        return sums

    def attention_loss(self, student: list[PropagationAttention], teacher: list[PropagationAttention]
                       ) -> torch.Tensor:
        """Mean ``1 - CKA`` of every student layer's maps against the teacher's chosen layer."""
        target = teacher[self.options.teacher_layer]
        generator = torch.Generator().manual_seed(self.config.train.seed)  # the same rows for every map
        losses = [attention_cka_loss(getattr(target, name), getattr(layer, name), ATTENTION_MAPS[name],
                                     self.options.cka_kernel, self.options.cka_rows, generator)
                  for layer in student for name in self.options.maps]
        return torch.stack(losses).mean()
