"""Betrayed by Attention training (``method: bba``; Ding et al. 2023, Sec. 3.3; SSL-UVOS
``train_RGB_cluster.py``): the spatio-temporal block learns from unlabelled clips of any videos,
on a frozen DINO ViT (:class:`~vosuite.models.bba.BetrayedByAttention`).

One step: clips of ``data.num_frames`` (3) frames, RGB in 0..1, normalised with
``bba.normalization`` (the original trains with ImageNet's mean / std and evaluates with other
values; ``"train"`` is the default here, as in the original's training); per frame the ViT's
last-block keys and output CLS token form ``[CLS, keys]`` (``bba.use_cls``: the original uses the
CLS token in training only); the block attends over all frames; ``points`` random patch indices
(the same for every frame and clip, from the step's seeded generator) are the queries of the
semantic-consistency and the motion-consistency losses (:mod:`~vosuite.training.methods.bba.losses`)
on the block's post-dropout attention, as in the original (``bba.loss_attention: "eval"`` reads a
second, dropout-free pass instead). The loss is their sum. Validation: unsupervised, proposals by
the discovery clustering (:class:`vosuite.unsupervised.discoverer.Discoverer`), official per-sequence matching.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vosuite.checkpoints.dino import load_vit
from vosuite.datasets.base import VideoRecord
from vosuite.errors import InputError
from vosuite.factory import create_model, model_config
from vosuite.io.frames import read_image_rgb
from vosuite.models.bba import NORMALIZATIONS, BetrayedByAttention
from vosuite.registry import get_spec
from vosuite.training.methods.base import Method, TrainingData
from vosuite.training.methods.bba.losses import SLOT_NEGATIVES, SLOT_POSITIVES, motion_loss, slot_loss
from vosuite.training.transplant import transplant


@dataclass
class BbAOptions:
    """The ``bba:`` section."""

    dino_checkpoint: str | None = None  # DINO ViT weights for the frozen encoder (vosuite convert dino)
    points: int = 8  # sampled query patches per step (the original: 8)
    normalization: str = "train"  # images in training: "train" (ImageNet, the original's) or "eval"
    use_cls: bool = True  # the original feeds each frame's CLS token in training (never at inference)
    loss_attention: str = "dropout"  # "dropout": the losses read the post-dropout attention (original)
    tau: float | None = None  # validation: the clustering threshold (None: the model's)
    ratio: int = 10  # validation: key-frame ratio


class BbAMethod(Method):
    """Self-supervised training of the spatio-temporal block (module docstring)."""

    name = "bba"
    Options = BbAOptions
    validation_task = "unsupervised"

    def __init__(self, config) -> None:
        super().__init__(config)
        if get_spec(config.model.name).family != "bba":
            raise InputError(f"method bba trains bba models (bba-*), not {config.model.name}")
        if self.options.normalization not in NORMALIZATIONS:
            raise InputError(f"bba.normalization {self.options.normalization!r}: use train or eval")
        if self.options.loss_attention not in ("dropout", "eval"):
            raise InputError(f"bba.loss_attention {self.options.loss_attention!r}: use dropout or eval")
        patch = model_config(config.model.name).stride
        tokens = (config.data.size[0] // patch) * (config.data.size[1] // patch)
        if tokens < SLOT_POSITIVES + SLOT_NEGATIVES:
            raise InputError(f"data.size {list(config.data.size)}: {tokens} patches per frame; the slot loss needs "
                             f"at least {SLOT_POSITIVES + SLOT_NEGATIVES} (its 30 positives and 200 negatives)")

    def build_model(self) -> BetrayedByAttention:
        """The block (trainable) on the frozen encoder: a DINO ViT (``bba.dino_checkpoint``), or a
        MobileNetV2 (``model.encoder_init``, e.g. imagenet-mobilenetv2, and / or ``model.init_from``,
        e.g. the shipped student whose ``encoder.*`` it shares)."""
        model = create_model(self.config.model.name, weights=self.config.model.checkpoint)
        if self.options.dino_checkpoint:
            load_vit(model.encoder, self.options.dino_checkpoint)
        if self.config.model.encoder_init:
            _init_cnn_encoder(model, self.config.model.encoder_init)
        if self.config.model.init_from:
            report = transplant(model, self.config.model.init_from, tuple(self.config.model.init_prefixes))
            print(f"model.init_from {self.config.model.init_from}: {len(report.copied)} tensors",
                  file=sys.stderr, flush=True)
        model.encoder.requires_grad_(False)
        return model.train()

    def build_data(self, model: nn.Module) -> TrainingData:
        from vosuite.training.data.unlabelled import collate_frames, unlabelled_clips

        return TrainingData(unlabelled_clips(self.config, normalize=False), collate_frames)

    def tokens(self, model: BetrayedByAttention, frames: torch.Tensor) -> torch.Tensor:
        """Clips [B, T, 3, H, W] in 0..1 -> block inputs [B, T, 1 + hw, C] ([CLS, keys] per frame)."""
        b, t = frames.shape[:2]
        mean, std = NORMALIZATIONS[self.options.normalization]
        images = (frames.flatten(0, 1) - frames.new_tensor(mean).view(1, 3, 1, 1)) / frames.new_tensor(std).view(
            1, 3, 1, 1)
        model.encoder.eval()  # frozen: no dropout, statistics fixed
        keys, cls = model.encode(images)  # [B*T, C, h, w], [B*T, C]
        keys = keys.flatten(2).transpose(1, 2)  # [B*T, hw, C]
        if not self.options.use_cls:
            cls = torch.zeros_like(cls)
        return torch.cat([cls[:, None], keys], dim=1).view(b, t, -1, keys.shape[-1])

    def training_step(self, model: BetrayedByAttention, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        frames = batch["frames"]
        tokens = self.tokens(model, frames)
        out = model(tokens)
        attention = out.attn_temporal
        if self.options.loss_attention == "eval":
            was = model.training
            model.eval()
            attention = model(tokens).attn_temporal
            model.train(was)
        hw = out.slots.shape[2]
        generator = torch.Generator().manual_seed(int(self.config.train.seed) * 1_000_003 + int(step))
        points = torch.randperm(hw, generator=generator)[:self.options.points].to(frames.device)
        semantic = slot_loss(attention, out.slots, points)
        motion = motion_loss(attention, points, frames.shape[1])
        loss = semantic + motion
        return loss, {"loss": float(loss.detach()), "slot_loss": float(semantic.detach()),
                      "motion_loss": float(motion.detach())}

    def predict_video(self, model: nn.Module, video: VideoRecord) -> Iterator[tuple[str, np.ndarray]]:
        """Proposals of a validation video by the discovery clustering (frame name, ids)."""
        from vosuite.unsupervised.discoverer import Discoverer

        discoverer = Discoverer(model, tau=self.options.tau, ratio=self.options.ratio,
                                size=self.config.val.size, progress=False)
        for index, labels in discoverer.discover(_FramesOf(video)):
            yield video.frame_names[index], labels


def _init_cnn_encoder(model: BetrayedByAttention, name: str) -> None:
    from vosuite.checkpoints.imagenet import load_encoder_init

    if model.cfg.cnn != "mobilenetv2":
        raise InputError(f"model.encoder_init {name}: MobileNetV2 weights, but {model.cfg.name} has a ViT backbone")
    weights = load_encoder_init(model.encoder, name)
    print(f"model.encoder_init {name}: {len(weights.state_dict)} encoder tensors from {weights.source}",
          file=sys.stderr, flush=True)


class _FramesOf:
    """A video's frames, decoded anew on every iteration (the Discoverer reads a video three times)."""

    def __init__(self, video: VideoRecord) -> None:
        self.video = video

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.video.frame_paths:
            yield read_image_rgb(path)
