"""DINO self-distillation pre-training (``method: dino``; Caron et al. 2021, arXiv 2104.14294).

The model is a :class:`~vosuite.models.dino.DINOPretraining` pair. One step (Algorithm 1): the
teacher sees the two global views of each frame (no gradient), the student every view (globals
and locals, :mod:`~vosuite.training.data.multicrop`); the loss is Eq. (1) with the centred and
sharpened teacher (:func:`~vosuite.training.methods.dino.losses.dino_loss`), then the centre moves
(Eq. 4, averaged over ranks under torchrun). After the optimiser step the teacher follows the
student with the cosine momentum schedule (``after_step``). During the first
``freeze_last_layer_steps`` the head's last layer does not move (DINO freezes it for an epoch).

What differs from DINO's recipe, for a 2-core CPU (each a config value): crops of 96 / 48 pixels
instead of 224 / 96, 6 local views instead of 8 (``crops``), K = 4096 output dimensions instead
of 65536 (the registered variant), a constant weight decay (DINO: cosine 0.04 -> 0.4; the shared
engine has one decay), AdamW as DINO. The teacher's backbone is the product: ``bba.dino_checkpoint``
and ``vosuite convert dino`` read the run's ``final.pt``.

Logs: ``loss``, ``teacher_temp``, ``momentum``, and the mean entropies of the teacher's and the
student's distributions (``teacher_entropy``, ``student_entropy``; DINO's Fig. 7 watches them for
collapse: a uniform teacher has entropy log K, a one-hot one 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vosuite.errors import InputError
from vosuite.factory import create_model, model_config
from vosuite.models.dino import DINOPretraining
from vosuite.registry import get_spec
from vosuite.training.data.multicrop import MultiCropConfig, MultiCropDataset, collate_crops
from vosuite.training.methods.base import Method, TrainingData
from vosuite.training.methods.dino.losses import dino_loss, teacher_momentum, teacher_temperature, updated_center


@dataclass
class DINOOptions:
    """The ``dino:`` section (DINO's argument names and defaults, except the CPU-sized crops)."""

    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_steps: int = 0  # DINO: 30 epochs
    momentum_teacher: float = 0.996
    center_momentum: float = 0.9
    freeze_last_layer_steps: int = 0  # DINO: 1 epoch
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)


def _entropy(logits: torch.Tensor) -> float:
    log_probs = F.log_softmax(logits.float(), dim=-1)
    return float(-(log_probs.exp() * log_probs).sum(-1).mean())


class DINOMethod(Method):
    """DINO pre-training of a ViT backbone on unlabelled frames (module docstring)."""

    name = "dino"
    Options = DINOOptions

    def __init__(self, config) -> None:
        super().__init__(config)
        if get_spec(config.model.name).family != "dino":
            raise InputError(f"method dino trains DINO pre-training pairs (dino-pretrain-*), not {config.model.name}")
        if config.val.every:
            raise InputError("method dino has no validation task: set val.every=0 (score the backbone with bba)")
        patch = model_config(config.model.name).backbone.patch_size
        crops = self.options.crops
        if crops.global_size % patch or crops.local_size % patch:
            raise InputError(f"dino.crops: global_size {crops.global_size} and local_size {crops.local_size} "
                             f"must be multiples of the patch size {patch}")

    def build_model(self) -> DINOPretraining:
        return create_model(self.config.model.name, weights=self.config.model.checkpoint).train()

    def build_data(self, model: DINOPretraining) -> TrainingData:
        from vosuite.datasets import open_dataset

        data = self.config.data
        crops = MultiCropConfig(**{**self.options.crops.__dict__, "seed": self.config.train.seed})
        return TrainingData(MultiCropDataset(open_dataset(data.dataset, data.root, data.split), crops), collate_crops)

    def freezable_keys(self) -> list[str]:
        return ["student.head.last_direction", "student.head.last_gain"]

    def freeze_active(self, step: int) -> bool:
        return step < self.options.freeze_last_layer_steps

    def training_step(self, model: DINOPretraining, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        options, crops = self.options, batch["crops"]
        with torch.no_grad():
            teacher = model.teacher.multi_crop(crops[:2])  # [2B, K]
        student = model.student.multi_crop(crops)  # [V B, K]
        temp = teacher_temperature(step, options.warmup_teacher_temp_steps, options.warmup_teacher_temp,
                                   options.teacher_temp)
        loss = dino_loss(student, teacher, model.center, options.student_temp, temp)
        model.center.copy_(updated_center(model.center, self._global_mean(teacher), options.center_momentum))
        logs = {"loss": float(loss.detach()), "teacher_temp": temp,
                "teacher_entropy": _entropy((teacher - model.center) / temp),
                "student_entropy": _entropy(student.detach() / options.student_temp),
                "momentum": teacher_momentum(step, self.config.train.total_steps, options.momentum_teacher),
                "max_entropy": math.log(teacher.shape[-1])}
        return loss, logs

    @staticmethod
    def _global_mean(teacher: torch.Tensor) -> torch.Tensor:
        """The teacher outputs whose mean is the centre's target, averaged over ranks under torchrun
        (DINO all-reduces the batch sum)."""
        if not (dist.is_available() and dist.is_initialized()):
            return teacher
        mean = teacher.mean(dim=0, keepdim=True)
        dist.all_reduce(mean)
        return mean / dist.get_world_size()

    def after_step(self, model: DINOPretraining, step: int) -> None:
        model.update_teacher(teacher_momentum(step, self.config.train.total_steps, self.options.momentum_teacher))
