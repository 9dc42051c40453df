"""DeAOT network (Yang & Yang, "Decoupling Features in Hierarchical Propagation for Video Object
Segmentation", NeurIPS 2022), a re-implementation of aot-benchmark's ``networks/models/deaot.py``.

Pieces (checkpoint prefixes in brackets):

* encoder [``encoder``]: MobileNetV2 or ResNet-50, 4 feature maps, output stride 16;
  the last one is projected to ``embed_dim`` by a 1x1 conv [``encoder_projector``].
* identity bank [``patch_wise_id_bank``]: conv k17 s16 p8 (k16 s16 without align_corners)
  embedding the one-hot mask (``max_obj_num + 1`` channels) on the stride-16 grid, followed by
  LayerNorm [``id_norm``] (AOT's identification mechanism, reused by DeAOT).
* propagation [``LSTT``]: :class:`~vosuite.nn.gpm.DualBranchGPM` (DeAOT Sec. 3).
* decoder [``decoder``]: :class:`~vosuite.nn.fpn_decoder.FPNSegmentationHead`.
* sine position embedding (no parameters; built by the engine, unused by the GPM layers).

The module is stateless: per-video memory lives in :mod:`vosuite.inference.memory`.

``attention="deformable"`` (variants ``*-deform``) uses the Gated Deformable Attention of
Truong et al. (arXiv 2401.13937, Sec. 3) in every GPM layer; such a model loads the vanilla
weights it shares, its offset networks start at zero offsets (see :func:`vosuite.models.build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from vosuite.models.variants import lookup_variant
from vosuite.nn.deformable_attention import DeformableConfig, offset_parameter_names
from vosuite.nn.fpn_decoder import FPNSegmentationHead
from vosuite.nn.gpm import DualBranchGPM, LayerCurrent, LayerMemory
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.position import sine_position_embedding
from vosuite.nn.resnet import resnet50
from vosuite.registry import Family, register_family, register_model


@dataclass(frozen=True)
class DeAOTConfig:
    """Architecture + default test-time memory settings (aot-benchmark ``configs/models/*.py``)."""

    name: str = "deaot-t"
    encoder: str = "mobilenetv2"  # or "resnet50"
    encoder_dims: tuple[int, int, int, int] = (24, 32, 96, 1280)  # strides 4, 8, 16, 16
    embed_dim: int = 256  # MODEL_ENCODER_EMBEDDING_DIM
    num_layers: int = 1  # MODEL_LSTT_NUM
    self_heads: int = 1  # MODEL_SELF_HEADS
    att_heads: int = 1  # MODEL_ATT_HEADS
    max_obj_num: int = 10  # MODEL_MAX_OBJ_NUM
    align_corners: bool = True  # MODEL_ALIGN_CORNERS
    decoder_intermediate: bool = False  # MODEL_DECODER_INTERMEDIATE_LSTT
    expand_ratio: float = 2.0
    local_radius: int = 7  # short-term window 15x15
    long_term_mem_gap: int = 9999  # TEST_LONG_TERM_MEM_GAP
    short_term_mem_skip: int = 1  # TEST_SHORT_TERM_MEM_SKIP
    attention: str = "vanilla"  # or "deformable" (arXiv 2401.13937 Sec. 3)
    deform: DeformableConfig = field(default_factory=DeformableConfig)  # used when attention="deformable"

    @property
    def num_ids(self) -> int:
        """Identity channels incl. background."""
        return self.max_obj_num + 1


_R50_DIMS = (256, 512, 1024, 1024)

#: The DeAOT variants of aot-benchmark (``deaott``, ``deaots``, ``deaotb``, ``deaotl``, ``r50_deaotl``).
VARIANTS: dict[str, DeAOTConfig] = {
    "deaot-t": DeAOTConfig(name="deaot-t", num_layers=1),
    "deaot-s": DeAOTConfig(name="deaot-s", num_layers=2),
    "deaot-b": DeAOTConfig(name="deaot-b", num_layers=3),
    "deaot-l": DeAOTConfig(name="deaot-l", num_layers=3, long_term_mem_gap=5),
    "r50-deaot-l": DeAOTConfig(name="r50-deaot-l", encoder="resnet50", encoder_dims=_R50_DIMS, num_layers=3,
                               long_term_mem_gap=5),
}
#: Deformable-attention twins ``<variant>-deform`` (same weights + zero-initialised offset networks).
DEFORMABLE_VARIANTS: dict[str, DeAOTConfig] = {
    f"{k}-deform": replace(v, name=f"{k}-deform", attention="deformable") for k, v in VARIANTS.items()
}


def get_config(name: str, **overrides: object) -> DeAOTConfig:
    """The config of a variant (``deaot-t`` ... or ``deaot-t-deform`` ...; ``_`` and case ignored),
    with field overrides."""
    config = lookup_variant({**VARIANTS, **DEFORMABLE_VARIANTS}, name, "DeAOT variant")
    return replace(config, **overrides) if overrides else config


def _build_encoder(cfg: DeAOTConfig) -> nn.Module:
    if cfg.encoder == "mobilenetv2":
        return MobileNetV2(output_stride=16)
    if cfg.encoder == "resnet50":
        return resnet50(output_stride=16)
    raise ValueError(f"unsupported encoder {cfg.encoder!r}")


class DeAOT(nn.Module):
    """The DeAOT network; see the module docstring. All methods are pure functions of their inputs."""

    family = "deaot"

    def __init__(self, cfg: DeAOTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DeAOTConfig()
        #: Internal resolution (short side) the weights were trained for; set from a checkpoint by
        #: ``vosuite.inference.weights.load_model``; None: the model's own preprocessing rule.
        self.default_size: int | None = None
        d = cfg.embed_dim
        self.encoder = _build_encoder(cfg)
        self.encoder_projector = nn.Conv2d(cfg.encoder_dims[-1], d, kernel_size=1)
        self.LSTT = DualBranchGPM(cfg.num_layers, d, cfg.self_heads, cfg.att_heads,
                                  intermediate_norm=cfg.decoder_intermediate, expand_ratio=cfg.expand_ratio,
                                  max_local_dis=cfg.local_radius, attention=cfg.attention, deform=cfg.deform)
        decoder_in = d * (2 * cfg.num_layers + 1) if cfg.decoder_intermediate else d * 2
        self.decoder = FPNSegmentationHead(decoder_in, cfg.num_ids, cfg.decoder_intermediate, hidden_dim=d,
                                           shortcut_dims=cfg.encoder_dims, align_corners=cfg.align_corners)
        if cfg.align_corners:
            self.patch_wise_id_bank = nn.Conv2d(cfg.num_ids, d, kernel_size=17, stride=16, padding=8)
        else:
            self.patch_wise_id_bank = nn.Conv2d(cfg.num_ids, d, kernel_size=16, stride=16, padding=0)
        self.id_norm = nn.LayerNorm(d)
        nn.init.xavier_uniform_(self.encoder_projector.weight)
        gain = 17**-2 if cfg.align_corners else 16**-2
        nn.init.orthogonal_(self.patch_wise_id_bank.weight.view(d, -1), gain=gain)

    # -- per-frame pieces -------------------------------------------------------------------
    def encode_image(self, img: torch.Tensor) -> list[torch.Tensor]:
        """img [N, 3, H, W] normalised -> [s4, s8, s16, projected s16 (embed_dim ch)]. A network
        moved to ``torch.channels_last`` gets its input in that layout too (faster convolutions
        on CPUs, forward and backward)."""
        if self.uses_channels_last() and not img.is_contiguous(memory_format=torch.channels_last):
            img = img.contiguous(memory_format=torch.channels_last)
        feats = list(self.encoder(img))
        feats[-1] = self.encoder_projector(feats[-1])
        return feats

    def uses_channels_last(self) -> bool:
        """Whether the encoder's stem convolution is stored channels-last (``model.to(memory_format=...)``)."""
        stem = next(m for m in self.encoder.modules() if isinstance(m, nn.Conv2d)).weight
        return stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()

    def id_embedding(self, one_hot: torch.Tensor) -> torch.Tensor:
        """one_hot [N, num_ids, H, W] -> ID embedding tokens [h*w, N, embed_dim] (conv + LayerNorm)."""
        emb = self.patch_wise_id_bank(one_hot)  # [N, d, h, w]
        emb = self.id_norm(emb.permute(2, 3, 0, 1)).permute(2, 3, 0, 1)
        n, d, h, w = emb.shape
        return emb.reshape(n, d, h * w).permute(2, 0, 1)

    def one_hot(self, label: torch.Tensor) -> torch.Tensor:
        """label [N, 1, H, W] or [N, H, W] with ids 0..max_obj_num -> float one-hot [N, num_ids, H, W]."""
        if label.dim() == 3:
            label = label.unsqueeze(1)
        ids = torch.arange(self.cfg.num_ids, device=label.device).view(1, -1, 1, 1)
        return (label == ids).to(self.patch_wise_id_bank.weight.dtype)

    @staticmethod
    def position_embedding(feat: torch.Tensor) -> torch.Tensor:
        """Sine embedding for a stride-16 map [N, C, h, w] -> tokens [h*w, N, C]."""
        n, c, h, w = feat.shape
        pos = sine_position_embedding(h, w, c // 2, device=feat.device).expand(n, -1, -1, -1)
        return pos.reshape(n, c, h * w).permute(2, 0, 1)

    def propagate(
        self,
        feat16: torch.Tensor,
        long_term: list[LayerMemory] | None = None,
        short_term: list[LayerMemory] | None = None,
        ref_id_emb: torch.Tensor | None = None,
        return_attn: bool = False,
    ) -> tuple[list[torch.Tensor], list[LayerCurrent], list[LayerMemory]]:
        """Run the GPM stack on the projected stride-16 features [N, d, h, w]; ``return_attn`` keeps
        the memory attention weights of every layer in ``LayerCurrent.attention``."""
        n, c, h, w = feat16.shape
        tokens = feat16.view(n, c, h * w).permute(2, 0, 1)  # [hw, N, d]
        return self.LSTT(tokens, (h, w), long_term, short_term, ref_id_emb, return_attn)

    def offset_parameter_names(self) -> list[str]:
        """State-dict keys of the offset networks (empty for vanilla attention): the only keys a
        vanilla checkpoint may lack when loaded into a deformable model."""
        return offset_parameter_names(self)

    def memory_from_current(self, current: list[LayerCurrent], id_emb: torch.Tensor) -> list[LayerMemory]:
        """Per-layer memory of a processed frame given its (predicted) ID embedding [hw, N, d]."""
        return [LayerMemory(c.key, c.value, layer.id_value(c.id_input, id_emb))
                for c, layer in zip(current, self.LSTT.layers, strict=True)]

    def decode(self, outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> torch.Tensor:
        """GPM outputs ([hw, N, 2d] per layer) + encoder maps -> ID logits [N, num_ids, H/4, W/4]."""
        n, _, h, w = feats[-1].shape
        inputs = [feats[-1]] + [o.view(h, w, n, -1).permute(2, 3, 0, 1) for o in outputs]
        return self.decoder(inputs, feats)


register_family(Family("deaot", network="vosuite.models.deaot:DeAOT", config="vosuite.models.deaot:get_config",
                       config_class="vosuite.models.deaot:DeAOTConfig", recipe="configs/deaot_t_davis16.yaml",
                       converter="aot"))
_SUMMARIES = {"deaot-t": "DeAOT-T: MobileNetV2, 1 GPM layer", "deaot-s": "DeAOT-S: MobileNetV2, 2 GPM layers",
              "deaot-b": "DeAOT-B: MobileNetV2, 3 GPM layers", "deaot-l": "DeAOT-L: MobileNetV2, 3 layers, gap 5",
              "r50-deaot-l": "R50-DeAOT-L: ResNet-50, 3 layers, gap 5"}
#: The weights that ship (sha256 checked on load), with their recipes: the default student
#: (fine-tuned from ImageNet in three stages; its card names them all) and the teacher store int8
#: weights with float16 scales and float16 encoders.
_SHIPPED = {
    "deaot-t-deform": {"weights": "deaot-t-deform.pt", "recipe": "configs/deaot_t_imagenet_twins_davis16.yaml",
                       "sha256": "399a39dfd117a8b317a07a780322083e95c872ec2dfb2114075027529709648b"},
    "deaot-l": {"weights": "deaot-l.pt", "recipe": "configs/deaot_l_teacher_davis16.yaml",
                "sha256": "e923fc106c375d12036910e4a2896467ef43f40eafd5b7ff8abb80c1e4d22d46"},
}
for _name in VARIANTS:
    register_model(_name, "deaot", summary=_SUMMARIES[_name], **_SHIPPED.get(_name, {}))
for _name in VARIANTS:
    register_model(f"{_name}-deform", "deaot", summary=f"{_SUMMARIES[_name]}, deformable attention",
                   **_SHIPPED.get(f"{_name}-deform", {}))
# Other weights of deaot-t-deform: the fast student (its file takes the frozen encoder from the
# default's) and the distillation experiment's two students (recipes only: no file ships).
register_model("fast", "deaot", tag_of="deaot-t-deform", alias="deaot-t-deform-fast",
               weights="deaot-t-deform.fast.pt", recipe="configs/deaot_t_fast_imagenet_davis16.yaml",
               sha256="6677a7a4150e32cb9774e02a0aeab647e89adff087aa350baea48e4f7fcaa17c",
               summary="DeAOT-T deformable at internal size 96: the fast student (--runtime onnx)")
register_model("kd", "deaot", tag_of="deaot-t-deform", alias="deaot-t-deform-kd",
               recipe="configs/distill_deaot_t_davis16.yaml",
               summary="DeAOT-T deformable, distilled from deaot-l label-free (arXiv 2401.13937)")
register_model("sup", "deaot", tag_of="deaot-t-deform", alias="deaot-t-deform-sup",
               recipe="configs/deaot_t_davis16.yaml",
               summary="DeAOT-T deformable, supervised, the distillation experiment's budget")
