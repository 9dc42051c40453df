"""S2S and S2S++: sequence-to-sequence video object segmentation with ConvLSTM memories.

* S2S: Xu et al., "YouTube-VOS: Sequence-to-Sequence Video Object Segmentation", ECCV 2018, Sec. 4:
  an *initializer* turns the first frame and its mask into the initial state of a ConvLSTM; every
  later frame goes through an *encoder*, the ConvLSTM at the bottleneck, and a *decoder*.
* S2S++: Azimi et al., "Revisiting Sequence-to-Sequence Video Object Segmentation with Multi-Task
  Loss and Skip-Memory", ICPR 2020 (arXiv 2004.12170), Sec. III: *skip-memory* (ConvLSTMs on the
  stride-16 and stride-8 skip connections, initialised by the initializer as well) and a
  *distance-class head* trained with the multi-task loss of :mod:`vosuite.training.methods.s2s.losses`.

The layout follows the authors' code (RS2S ``networks.py``: ``Initializer``, ``EncoderVGGUnet``,
``ConvLSTMCell``, ``DecoderSkip``; ``train.py`` for the cell sizes); ``docs/s2s.md`` lists the
facts with their sources and where vosuite deviates. Pieces (state-dict prefixes in brackets):

* initializer [``initializer``]: a second backbone with a 4-channel input (RGB + mask), fc6 / fc7
  as convolutions, 1x1 conv + ReLU heads giving (h0, c0) of the bottleneck ConvLSTM and, with
  skip-memory, a top-down path (x2 upsampling, 3x3 conv, concatenation with the backbone's
  stride-16 / stride-8 maps, 1x1 conv) giving (h0, c0) of the two skip-memory ConvLSTMs.
* encoder [``encoder``]: VGG-16 (:class:`~vosuite.nn.vgg.VGG16`) or the lighter MobileNetV2
  (:class:`MobileNetV2Skips`), five maps at strides 2, 4, 8, 16, 32; [``encoder_head``]: 1x1 conv
  + ReLU -> 1x1 conv + ReLU projecting the stride-32 map to the ConvLSTM input.
* memory: [``bottleneck_lstm``] at stride 32 and, for S2S++, [``skip_lstms.0``] at stride 16 and
  [``skip_lstms.1``] at stride 8 (:class:`~vosuite.nn.convlstm.ConvLSTMCell`, as many hidden
  channels as their input map, kernels 3 and 5).
* decoder [``decoder``]: five blocks, stride 32 -> 1: concatenate (x, encoder skip map[, skip-memory
  h]), 1x1 conv + ReLU, x2 bilinear upsampling, 5x5 conv + ReLU.
* heads [``heads``]: with K distance classes, two 3x3 convs give distance logits and K segmentation
  maps, and a 1x1 conv on ReLU(both) gives the mask logit (the cascade of RS2S ``DecoderSkip``);
  without, one 3x3 conv gives the mask logit.

Recurrent state order (:data:`S2SState`): ``[(h, c) bottleneck (stride 32), (h, c) skip-memory
stride 16, (h, c) skip-memory stride 8]``, the last two with ``skip_memory`` only.

Inputs are ImageNet-normalised RGB [N, 3, H, W] with H and W multiples of :attr:`S2S.stride` (32);
the authors train and test at 256 x 448. Every method is a pure function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from vosuite.models.variants import lookup_variant
from vosuite.nn.convlstm import ConvLSTMCell
from vosuite.nn.frozen_bn import FrozenBatchNorm2d
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.vgg import VGG16
from vosuite.registry import Family, register_family, register_model

#: Distance classes of RS2S: 20-pixel border, 1-pixel bins, 20 + 20 + 2 (``train.py`` ``num_classes``).
RS2S_DISTANCE_CLASSES = 42
#: Indices (into the five encoder maps, strides 2 ... 32) of the skip connections with memory: 16, 8.
MEMORY_LEVELS = (3, 2)
ENCODERS = ("vgg16", "mobilenetv2")

S2SState = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class S2SConfig:
    """Architecture of an S2S / S2S++ variant (defaults: the RS2S code at VGG-16 scale)."""

    name: str
    encoder: str = "vgg16"  # or "mobilenetv2"
    skip_memory: bool = False  # S2S++: ConvLSTMs on the stride-16 and stride-8 skip connections
    distance_classes: int = 0  # 0: no distance head; else K classes (RS2S: 42)
    encoder_width: float = 1.0  # channel multiplier of the encoder and initializer backbones
    vgg_norm: bool = True  # FrozenBatchNorm2d after every VGG conv (vgg16_bn layout); False: plain VGG-16
    hidden: int = 512  # channels of the bottleneck ConvLSTM (and of the encoder projection)
    fc_channels: int = 4096  # fc6 / fc7 width (initializer) and the encoder's fc conv width
    init_fc_kernel: int = 7  # the initializer's fc6 as a k x k conv (VGG-16: 7)
    bottleneck_kernel: int = 3  # bottleneck ConvLSTM kernel (RS2S train.py)
    skip_kernels: tuple[int, int] = (3, 5)  # skip-memory ConvLSTM kernels at strides 16, 8 (RS2S train.py)
    decoder_channels: tuple[int, int, int, int, int] = (512, 256, 128, 64, 64)  # after strides 16, 8, 4, 2, 1
    decoder_kernel: int = 5  # conv after each x2 upsampling (RS2S DecoderSkip)
    head_kernel: int = 3  # distance / segmentation heads (RS2S DecoderSkip)
    convlstm_activation: str = "rs2s"  # "rs2s" (sigmoid / ReLU, the authors' code) or "standard" (tanh)

    @property
    def num_states(self) -> int:
        """Number of ConvLSTMs, i.e. of (h, c) pairs in the state."""
        return 1 + (len(MEMORY_LEVELS) if self.skip_memory else 0)


_MOBILENET = {"encoder": "mobilenetv2", "hidden": 256, "fc_channels": 512, "init_fc_kernel": 3,
              "decoder_channels": (256, 128, 64, 32, 32), "decoder_kernel": 3}
_BASE = {
    "s2s": S2SConfig(name="s2s"),
    "s2s-dist": S2SConfig(name="s2s-dist", distance_classes=RS2S_DISTANCE_CLASSES),
    "s2spp": S2SConfig(name="s2spp", skip_memory=True, distance_classes=RS2S_DISTANCE_CLASSES),
}
#: S2S baseline (``s2s``), + distance head (``s2s-dist``), S2S++ (``s2spp``), and ``-mnv2`` twins
#: with the lighter MobileNetV2 encoder and narrower memory / decoder.
S2S_VARIANTS: dict[str, S2SConfig] = {
    **_BASE,
    **{f"{k}-mnv2": replace(v, name=f"{k}-mnv2", **_MOBILENET) for k, v in _BASE.items()},
}


def get_s2s_config(name: str, **overrides: object) -> S2SConfig:
    """The config of a variant (``_`` and case ignored), with field overrides."""
    config = lookup_variant(S2S_VARIANTS, name, "S2S variant")
    return replace(config, **overrides) if overrides else config


# -- backbones ------------------------------------------------------------------------------------
def _last_conv_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class MobileNetV2Skips(MobileNetV2):
    """:class:`~vosuite.nn.mobilenetv2.MobileNetV2` at output stride 32 returning five maps, after
    ``features`` 1, 3, 6, 13 and 18: strides 2, 4, 8, 16, 32 with 16, 24, 32, 96, 1280 channels (at
    width 1). Same parameter names; ``in_channels`` = 4 replaces the first conv for the initializer.
    Norms are :class:`FrozenBatchNorm2d` (``thaw_batch_norm`` to train them)."""

    TAPS = (1, 3, 6, 13, 18)

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__(output_stride=32, width_mult=width)
        if in_channels != 3:
            first = self.features[0][0]
            self.features[0][0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride,
                                            first.padding, bias=False)
            nn.init.kaiming_normal_(self.features[0][0].weight, mode="fan_out")
        self.out_channels = tuple(_last_conv_channels(self.features[i]) for i in self.TAPS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: [N, in_channels, H, W]
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                outs.append(x)
        return outs  # strides 2, 4, 8, 16, 32


def build_backbone(cfg: S2SConfig, in_channels: int) -> VGG16 | MobileNetV2Skips:
    """The encoder (``in_channels`` 3) or initializer (4) backbone of ``cfg``; has ``out_channels``."""
    if cfg.encoder == "vgg16":
        return VGG16(in_channels, width=cfg.encoder_width, norm=FrozenBatchNorm2d if cfg.vgg_norm else None)
    if cfg.encoder == "mobilenetv2":
        return MobileNetV2Skips(in_channels, width=cfg.encoder_width)
    raise ValueError(f"unsupported S2S encoder {cfg.encoder!r}; known: {', '.join(ENCODERS)}")


# -- small pieces -----------------------------------------------------------------------------------
def _conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    """A same-padded conv, Xavier-uniform weights and zero bias (RS2S initialises its new convs so)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _conv_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(_conv(in_ch, out_ch, kernel), nn.ReLU(inplace=True))


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear upsampling with aligned corners (RS2S ``nn.Upsample`` / ``F.interpolate``)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class StateHead(nn.Module):
    """(h0, c0) = (ReLU(1x1 conv(x)), ReLU(1x1 conv(x))), RS2S ``Initializer.h_*`` / ``c_*``."""

    def __init__(self, in_ch: int, hidden: int) -> None:
        super().__init__()
        self.h = _conv(in_ch, hidden, 1)
        self.c = _conv(in_ch, hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.relu(self.h(x)), F.relu(self.c(x))


class TopDownLevel(nn.Module):
    """One initializer level for a skip-memory ConvLSTM: x2 upsampling, 3x3 conv + ReLU to the
    skip map's channels, concatenation with it, 1x1 conv + ReLU, then a :class:`StateHead`."""

    def __init__(self, in_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.up_conv = _conv_relu(in_ch, skip_ch, 3)
        self.fuse = _conv_relu(2 * skip_ch, skip_ch, 1)
        self.state = StateHead(skip_ch, skip_ch)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.up_conv(_upsample2(x))  # [N, C_skip, 2h, 2w]
        x = self.fuse(torch.cat([x, skip], dim=1))  # [N, C_skip, 2h, 2w]
        return x, self.state(x)


class S2SInitializer(nn.Module):
    """First frame + mask -> initial (h, c) of every ConvLSTM (Xu et al. Sec. 4; RS2S ``Initializer``)."""

    def __init__(self, cfg: S2SConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg, in_channels=4)
        skips = self.backbone.out_channels
        self.fc = nn.Sequential(  # fc6 (k x k) and fc7 (1x1) as convolutions
            *_conv_relu(skips[4], cfg.fc_channels, cfg.init_fc_kernel),
            *_conv_relu(cfg.fc_channels, cfg.fc_channels, 1),
        )
        self.bottleneck_state = StateHead(cfg.fc_channels, cfg.hidden)
        self.top_down = nn.ModuleList()
        if cfg.skip_memory:
            self.reduce = _conv_relu(cfg.fc_channels, cfg.hidden, 1)
            in_ch = cfg.hidden
            for level in MEMORY_LEVELS:
                self.top_down.append(TopDownLevel(in_ch, skips[level]))
                in_ch = skips[level]

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> S2SState:
        feats = self.backbone(torch.cat([image, mask.to(image.dtype)], dim=1))  # 5 maps, strides 2 ... 32
        x = self.fc(feats[4])  # [N, fc, H/32, W/32]
        state = [self.bottleneck_state(x)]
        if self.top_down:
            x = self.reduce(x)  # [N, hidden, H/32, W/32]
            for level, block in zip(MEMORY_LEVELS, self.top_down, strict=True):
                x, level_state = block(x, feats[level])
                state.append(level_state)
        return state


class DecoderBlock(nn.Module):
    """cat(x, skip maps) -> 1x1 conv + ReLU (back to x's channels) -> x2 -> k x k conv + ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__()
        self.fuse = _conv_relu(in_ch + skip_ch, in_ch, 1)
        self.conv = _conv_relu(in_ch, out_ch, kernel)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.fuse(torch.cat([x, *skips], dim=1))  # [N, C_in, h, w]
        return self.conv(_upsample2(x))  # [N, C_out, 2h, 2w]


class S2SDecoder(nn.Module):
    """Five :class:`DecoderBlock` from stride 32 to 1; block i takes encoder map 4 - i and, at the
    skip-memory levels, that ConvLSTM's h as well (RS2S ``DecoderSkip``)."""

    def __init__(self, cfg: S2SConfig, skip_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        in_ch = cfg.hidden
        for i, out_ch in enumerate(cfg.decoder_channels):
            level = 4 - i
            extra = skip_channels[level] * (2 if cfg.skip_memory and level in MEMORY_LEVELS else 1)
            self.blocks.append(DecoderBlock(in_ch, extra, out_ch, cfg.decoder_kernel))
            in_ch = out_ch

    def forward(self, x: torch.Tensor, feats: list[torch.Tensor], memory: dict[int, torch.Tensor]) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            level = 4 - i
            skips = [feats[level]] + ([memory[level]] if level in memory else [])
            x = block(x, skips)
        return x  # [N, decoder_channels[-1], H, W]


class S2SHeads(nn.Module):
    """Mask logit and, with K > 0, K distance-class logits (the cascade of RS2S ``DecoderSkip``:
    mask = 1x1 conv(ReLU(cat(distance logits, segmentation maps))))."""

    def __init__(self, in_ch: int, distance_classes: int, kernel: int) -> None:
        super().__init__()
        self.distance_classes = k = distance_classes
        self.segmentation = _conv(in_ch, k if k else 1, kernel)
        if k:
            self.distance = _conv(in_ch, k, kernel)
            self.merge = _conv(2 * k, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        segmentation = self.segmentation(x)  # [N, K or 1, H, W]
        if not self.distance_classes:
            return segmentation, None
        distance = self.distance(x)  # [N, K, H, W]
        return self.merge(F.relu(torch.cat([distance, segmentation], dim=1))), distance


@dataclass
class S2SOutput:
    """One step's result: mask logits [N, 1, H, W], distance logits [N, K, H, W] or None, new state."""

    mask_logits: torch.Tensor
    distance_logits: torch.Tensor | None
    state: S2SState


class S2S(nn.Module):
    """S2S / S2S++ network (module docstring). ``stride`` = 32: H and W must be multiples of it."""

    family = "s2s"

    stride: int = 32

    def __init__(self, cfg: S2SConfig) -> None:
        super().__init__()
        self.cfg = cfg
        #: Internal resolution (short side) the weights were trained for; set from a checkpoint by
        #: ``vosuite.inference.weights.load_model``; None: the inference default.
        self.default_size: int | None = None
        self.initializer = S2SInitializer(cfg)
        self.encoder = build_backbone(cfg, in_channels=3)
        skips = self.encoder.out_channels
        self.encoder_head = nn.Sequential(*_conv_relu(skips[4], cfg.fc_channels, 1),
                                          *_conv_relu(cfg.fc_channels, cfg.hidden, 1))
        self.bottleneck_lstm = ConvLSTMCell(cfg.hidden, cfg.hidden, cfg.bottleneck_kernel,
                                            activation=cfg.convlstm_activation)
        self.skip_lstms = nn.ModuleList()
        if cfg.skip_memory:
            for level, kernel in zip(MEMORY_LEVELS, cfg.skip_kernels, strict=True):
                self.skip_lstms.append(ConvLSTMCell(skips[level], skips[level], kernel,
                                                    activation=cfg.convlstm_activation))
        self.decoder = S2SDecoder(cfg, skips)
        self.heads = S2SHeads(cfg.decoder_channels[-1], cfg.distance_classes, cfg.head_kernel)

    def _check_image(self, image: torch.Tensor) -> None:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [N, 3, H, W], got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"image height and width must be multiples of {self.stride}, got {h} x {w}")

    def initial_state(self, image: torch.Tensor, mask: torch.Tensor) -> S2SState:
        """First frame image [N, 3, H, W] (ImageNet-normalised) + its mask [N, 1, H, W] (float 0/1)
        -> the (h, c) of every ConvLSTM, in the documented order."""
        self._check_image(image)
        if mask.shape != (image.shape[0], 1, *image.shape[-2:]):
            raise ValueError(f"mask must be [N, 1, H, W] like the image, got {tuple(mask.shape)}")
        return self.initializer(image, mask)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's 5 maps (strides 2 ... 32) of ``image`` [N, 3, H, W]; objects of one frame
        can share them (:meth:`step`'s ``features``)."""
        self._check_image(image)
        return list(self.encoder(image))

    def step(self, image: torch.Tensor | None, state: S2SState,
             features: list[torch.Tensor] | None = None) -> S2SOutput:
        """Segment the next frame [N, 3, H, W] given the previous state; returns the new state too.
        ``features``: :meth:`encode` of the frame, computed once for all N objects (batch 1 is
        broadcast to N); ``image`` is then unused."""
        if len(state) != self.cfg.num_states:
            raise ValueError(f"{self.cfg.name} carries {self.cfg.num_states} (h, c) states, got {len(state)}")
        if features is None:
            if image is None:
                raise ValueError("step needs an image or its features")
            features = self.encode(image)
        batch = state[0][0].shape[0]
        feats = [f.expand(batch, -1, -1, -1) if f.shape[0] == 1 else f for f in features]  # 5 maps
        x = self.encoder_head(feats[4])  # [N, hidden, H/32, W/32]
        new_state = [self.bottleneck_lstm(x, state[0])]
        memory: dict[int, torch.Tensor] = {}
        for level, cell, previous in zip(MEMORY_LEVELS, self.skip_lstms, state[1:], strict=False):
            h, c = cell(feats[level], previous)  # [N, C_level, H/2^(level+1), W/2^(level+1)]
            memory[level] = h
            new_state.append((h, c))
        decoded = self.decoder(new_state[0][0], feats, memory)  # [N, decoder_channels[-1], H, W]
        mask_logits, distance_logits = self.heads(decoded)
        return S2SOutput(mask_logits, distance_logits, new_state)


register_family(Family("s2s", network="vosuite.models.s2s:S2S", config="vosuite.models.s2s:get_s2s_config",
                       config_class="vosuite.models.s2s:S2SConfig", recipe="configs/s2spp_davis16.yaml"))
_SUMMARIES = {"s2s": "S2S: ConvLSTM encoder-decoder", "s2s-dist": "S2S + distance-class head",
              "s2spp": "S2S++: skip-memory + distance-class head"}
for _name, _config in S2S_VARIANTS.items():
    _base = _name.removesuffix("-mnv2")
    register_model(_name, "s2s", summary=f"{_SUMMARIES[_base]} ({'MobileNetV2' if _base != _name else 'VGG-16'})")
