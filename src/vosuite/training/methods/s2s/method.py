"""S2S / S2S++ training on the engine's clips (``method: s2s``; Xu et al. 2018 Sec. 4, Azimi et al.
2020 Sec. III; the recipe of RS2S ``train.py``, see ``docs/s2s.md``).

One clip of T frames (the :class:`~vosuite.training.data.ClipDataset` samples DeAOT trains on):

* **objects**: S2S follows one object per sequence (RS2S draws one sample per (video, object)).
  A clip's labels hold objects 1..K (its own and pasted ones); each object becomes a binary
  sequence (its pixels 1, everything else, other objects included, 0). With
  ``s2s.objects: all`` (default) every object of every clip is stacked on the batch
  dimension, so a batch of B clips trains sum(K) sequences (other objects act as distractors);
  with ``one`` a single object per clip is drawn (a function of (seed, sample index), the same on
  any rank), so the batch is exactly B sequences;
* **recurrence**: frame 0 and its mask -> ``S2S.initial_state``; frames 1..T-1 -> ``S2S.step``
  with the previous state (no teacher forcing: the state never sees a mask again, as in RS2S);
* **loss**: :class:`~vosuite.training.methods.s2s.losses.S2SLoss` on every predicted frame (0.6 balanced
  BCE + 0.2 distance-class CE when the variant has the head + 0.2 log-Jaccard, each over the
  whole batch of sequences), averaged over frames 1..T-1 (RS2S ``loss_avg``).

Crops must be multiples of ``S2S.stride`` (32) on both sides. ``model.encoder_norm: batch`` thaws
every :class:`~vosuite.nn.frozen_bn.FrozenBatchNorm2d` of the network (the encoder's and the
initializer's backbone) for from-scratch training; the engine freezes them back when it saves.
Validation is the shared semi-supervised one (:mod:`vosuite.training.validation`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.models.s2s import S2S
from vosuite.nn.frozen_bn import thaw_batch_norm
from vosuite.registry import get_spec
from vosuite.training.methods.base import Method, check_encoder_norm
from vosuite.training.methods.s2s.losses import S2SLoss

#: ``s2s.objects`` values: every object of a clip, or one random object per clip.
OBJECT_MODES = ("all", "one")


@dataclass
class S2SOptions:
    """The ``s2s:`` section."""

    # "all" = every object of a clip is its own binary sequence in the batch; "one" = one random
    # object per clip (a fixed batch size, RS2S's one sample per (video, object))
    objects: str = "all"


def check_s2s_config(config) -> None:
    """An S2S variant, crops of multiples of 32, a known ``s2s.objects``, valid norms."""
    name = config.model.name
    if get_spec(name).family != "s2s":
        raise InputError(f"method s2s trains S2S variants (s2s, s2s-dist, s2spp, with or without -mnv2), "
                         f"not {name}")
    stride = S2S.stride
    bad = [side for side in config.data.size if side % stride]
    if bad:
        fixed = [max(stride, stride * round(side / stride)) for side in config.data.size]
        raise InputError(f"data.size {list(config.data.size)}: S2S needs sides that are multiples of {stride} "
                         f"pixels, e.g. data.size={fixed}")
    objects = config.method_options.objects if config.method_options is not None else S2SOptions().objects
    if objects not in OBJECT_MODES:
        raise InputError(f"s2s.objects {objects!r}: use {' or '.join(OBJECT_MODES)}")
    if config.model.encoder_freeze_at:
        raise InputError("model.encoder_freeze_at: S2S has two backbones (encoder and initializer) and no "
                         "pretrained stages to freeze here; set model.encoder_freeze_at=0")
    check_encoder_norm(config)


class S2SMethod(Method):
    """Sequence-to-sequence training of an S2S / S2S++ variant (see the module docstring)."""

    name = "s2s"
    Options = S2SOptions

    def __init__(self, config) -> None:
        check_s2s_config(config)
        super().__init__(config)
        self.loss = S2SLoss()

    def build_model(self) -> S2S:
        """The variant (with the configured initial weights, ``model.encoder_init`` in both
        MobileNetV2 backbones), in train mode; trainable batch norms in both backbones with
        ``model.encoder_norm=batch``."""
        if self.config.model.encoder_init and self.config.model.checkpoint:
            raise InputError("model.encoder_init starts a new model; model.checkpoint already holds its encoders")
        model = create_model(self.config.model.name, weights=self.config.model.checkpoint)
        if self.config.model.encoder_init:
            init_s2s_encoders(model, self.config.model.encoder_init)
        if self.config.model.encoder_norm == "batch":
            thaw_batch_norm(model)
        return model.train()

    def sequences(self, batch: Mapping[str, object]) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip index, object id) of every binary sequence of the batch, two int64 vectors."""
        clips, ids = [], []
        for position, (count, index) in enumerate(zip(batch["obj_num"], batch["index"], strict=True)):
            count = int(count)
            if self.options.objects == "one":
                chosen = [int(np.random.default_rng([self.config.train.seed, int(index)]).integers(1, count + 1))]
            else:
                chosen = list(range(1, count + 1))
            clips += [position] * len(chosen)
            ids += chosen
        return torch.tensor(clips, dtype=torch.long), torch.tensor(ids, dtype=torch.long)

    def training_step(self, model: S2S, batch: Mapping[str, object], step: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean per-frame S2S loss of the batch's sequences and its terms (plain floats) for the logs."""
        frames, labels = batch["frames"], batch["labels"]  # [B, T, 3, H, W], [B, T, 1, H, W]
        clips, ids = self.sequences(batch)
        clips = clips.to(frames.device)
        video = frames[clips]  # [N, T, 3, H, W]
        masks = (labels[clips] == ids.to(labels.device).view(-1, 1, 1, 1, 1)).to(frames.dtype)  # [N, T, 1, H, W]
        state = model.initial_state(video[:, 0], masks[:, 0])
        weights = {"bce": self.loss.config.bce_weight, "jaccard": self.loss.config.jaccard_weight,
                   "distance": self.loss.config.distance_weight}
        losses, sums = [], {}
        for t in range(1, video.shape[1]):
            out = model.step(video[:, t], state)
            state = out.state
            distance = None if out.distance_logits is None else out.distance_logits.float()
            terms = self.loss.terms(out.mask_logits.float(), masks[:, t], distance)
            losses.append(sum(weights[name] * value for name, value in terms.items()))
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        loss = torch.stack(losses).mean()
        logs = {name: total / len(losses) for name, total in sums.items()}
        logs.update(loss=float(loss.detach()), sequences=float(len(ids)))
        return loss, logs


def init_s2s_encoders(model: S2S, name: str) -> None:
    """Pretrained MobileNetV2 weights (``model.encoder_init``) in both backbones: the frame encoder
    as they are; the initializer's, which reads RGB + mask, with the mask channel of its first
    convolution at zero (it starts as the RGB encoder and learns what the mask adds)."""
    from vosuite.checkpoints.imagenet import load_encoder_init

    if model.cfg.encoder != "mobilenetv2":
        raise InputError(f"model.encoder_init {name}: MobileNetV2 weights, but {model.cfg.name} has a "
                         f"{model.cfg.encoder} encoder")
    weights = load_encoder_init(model.encoder, name)
    state = dict(weights.state_dict)
    first = state[FIRST_CONV]  # [C, 3, k, k]
    state[FIRST_CONV] = torch.cat([first, torch.zeros_like(first[:, :1])], dim=1)  # [C, 4, k, k]
    model.initializer.backbone.load_state_dict(state, strict=True)
    print(f"model.encoder_init {name}: {len(state)} tensors into both encoders, from {weights.source}",
          file=sys.stderr, flush=True)


#: The first convolution of a MobileNetV2 (the one the initializer's extra mask channel widens).
FIRST_CONV = "features.0.0.weight"
