"""The model registry: the one place that names vosuite's models (like timm's ``list_models`` /
``create_model`` and SAM2's ``build_sam`` factories).

Every model name maps to a :class:`ModelSpec`: its family, its default weights file under
``vosuite/weights/`` (with the file's sha256; ``None`` when no weights ship) and its training
recipe. Every family maps to a :class:`Family`: its network class and config class, how a name
becomes a config (the builder: :func:`build_network`), its inference core and, through the core,
its preprocessing (:func:`preprocess`: the core's network input size rule, then vosuite's one
colour normalisation :func:`~vosuite.inference.preprocess.normalize_rgb`).

    import vosuite
    vosuite.list_models()                       # ['deaot-t', ..., 's2spp-mnv2']
    net = vosuite.create_model("deaot-t-deform")          # the shipped weights
    net = vosuite.create_model("deaot-l", weights=None)   # random initialisation
    net = vosuite.create_model("deaot-t", weights="run/final.pt")

A new model registers with one :func:`register_model` line below (a new family with one
:func:`register_family` call). This module imports no torch until a network is built, so that
``vosuite --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vosuite.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from vosuite.inference.core import VideoCore

#: Where weights shipped with the package live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The model of ``vosuite segment`` / ``infer`` / ``demo`` and ``Segmenter()`` by default.
DEFAULT_MODEL = "deaot-t-deform"
#: Default cap on DeAOT's long-term memory frames (the ``--max-memory-frames`` default).
DEFAULT_MAX_MEMORY_FRAMES = 32


@dataclass(frozen=True)
class CoreOptions:
    """Test-time options of an inference core; each family accepts its own and refuses the others'.

    Attributes:
        long_term_gap: DeAOT: a long-term memory frame every N frames (None: the model's).
        max_memory_frames: DeAOT: cap on long-term memory frames (reference frames kept).
        merge: S2S: ``"soft"`` or ``"rs2s"`` object merging (None: the family's default).
    """

    long_term_gap: int | None = None
    max_memory_frames: int | None = DEFAULT_MAX_MEMORY_FRAMES
    merge: str | None = None


@dataclass(frozen=True)
class Family:
    """A model family.

    Attributes:
        name: the value of a vosuite checkpoint's ``model.family``.
        trained: whether its models learn weights (False: training-free baselines, never load any).
        network: ``() -> type``: the network class (imported lazily).
        config_class: ``() -> type``: its config dataclass.
        config: ``(name) -> config`` for a registered variant name.
        make_core: ``(model, size, options, device) -> VideoCore``: a fresh per-video inference state.
        recipe: the training recipe a missing-weights message points at.
        converter: the ``vosuite convert`` kind that reads other codes' checkpoints of this family.
    """

    name: str
    network: Callable[[], type]
    config_class: Callable[[], type]
    config: Callable[[str], Any]
    make_core: Callable[..., VideoCore]
    recipe: str
    converter: str | None = None
    trained: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name.

    Attributes:
        name: canonical name (lower case, ``-``); ``_`` and case are ignored when looking up.
        family: its :class:`Family` name.
        weights: file name of its default weights under :data:`WEIGHTS_DIR` (None: none ship).
        sha256: that file's sha256 (checked when the default weights load).
        recipe: its training recipe (default: the family's).
        summary: one line for ``vosuite models``.
        architecture: the network variant its weights hold when the name is not one
            (``deaot-t-deform-kd``: other weights of ``deaot-t-deform``); default: the name.
    """

    name: str
    family: str
    weights: str | None = None
    sha256: str | None = None
    recipe: str | None = None
    summary: str = ""
    architecture: str | None = None

    @property
    def network_name(self) -> str:
        """The variant name the network's config and the checkpoints carry."""
        return self.architecture or self.name

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None

    @property
    def card_path(self) -> Path:
        """The model card: beside the weights, or ``weights/<name>.md`` (training-free baselines)."""
        return WEIGHTS_DIR / f"{Path(self.weights).stem if self.weights else self.name}.md"

    @property
    def ships_weights(self) -> bool:
        path = self.weights_path
        return path is not None and path.is_file()

    @property
    def trained(self) -> bool:
        """Whether the model has weights at all (False for the training-free baselines)."""
        return FAMILIES[self.family].trained

    def config(self) -> Any:
        return FAMILIES[self.family].config(self.network_name)

    def training_recipe(self) -> str:
        return self.recipe or FAMILIES[self.family].recipe


FAMILIES: dict[str, Family] = {}
MODELS: dict[str, ModelSpec] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def register_model(name: str, family: str, weights: str | None = None, sha256: str | None = None,
                   recipe: str | None = None, summary: str = "", architecture: str | None = None) -> ModelSpec:
    """Register a model name (see :class:`ModelSpec`)."""
    key = canonical_key(name)
    if key in MODELS:
        raise ValueError(f"model {key!r} is registered twice")
    if family not in FAMILIES:
        raise ValueError(f"model {key!r}: unknown family {family!r}")
    if architecture is not None and canonical_key(architecture) not in MODELS:
        raise ValueError(f"model {key!r}: architecture {architecture!r} is not registered (register it first)")
    spec = ModelSpec(key, family, weights, sha256, recipe, summary,
                     canonical_key(architecture) if architecture else None)
    MODELS[key] = spec
    return spec


def canonical_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def list_models(family: str | None = None) -> list[str]:
    """Every registered model name (of ``family`` when given), in registration order."""
    return [name for name, spec in MODELS.items() if family is None or spec.family == family]


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (``_`` and case ignored); an unknown name is an InputError
    listing the known ones."""
    spec = MODELS.get(canonical_key(name))
    if spec is None:
        raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)} (see `vosuite models`)")
    return spec


def family_of(model: Any) -> Family:
    """The family of a model name, a config or a network."""
    if isinstance(model, str):
        return FAMILIES[get_spec(model).family]
    cfg = getattr(model, "cfg", model)
    for family in FAMILIES.values():
        if isinstance(cfg, family.config_class()):
            return family
    raise InputError(f"not a vosuite model: {type(model).__name__}")


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

def build_network(name_or_config: Any) -> nn.Module:
    """A randomly initialised network of a registered name or a config, in eval mode; its
    ``default_size`` (the internal resolution its weights were trained for) is None."""
    cfg = get_spec(name_or_config).config() if isinstance(name_or_config, str) else name_or_config
    model = family_of(cfg).network()(cfg)
    model.default_size = None
    return model.eval()


def preprocess(model: nn.Module, rgb: Any, size: int | None = None) -> Any:
    """One frame (RGB uint8 [H, W, 3]) as the network input of ``model`` [1, 3, h, w]: its family's
    size rule (the one its inference core applies, at internal size ``size``) and vosuite's one
    normalisation (:func:`~vosuite.inference.preprocess.preprocess_image`)."""
    from vosuite.inference.preprocess import preprocess_image

    core = family_of(model).make_core(model, size, CoreOptions())
    return preprocess_image(rgb, core.network_size(*rgb.shape[:2]))


def verify_weights(spec: ModelSpec) -> Path:
    """The default weights file of ``spec``, checked against its sha256; InputError when it does not
    ship or differs."""
    from vosuite.inference.weights import missing_weights_message

    path = spec.weights_path
    if path is None or not path.is_file():
        raise InputError(missing_weights_message(spec.name))
    if spec.sha256 is not None:
        digest = file_sha256(path)
        if digest != spec.sha256:
            raise InputError(f"{path}: sha256 {digest[:12]}... differs from the registered {spec.sha256[:12]}... "
                             "(a damaged or replaced file; reinstall vosuite)")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_model(name: str = DEFAULT_MODEL, weights: str | Path | None = "default", device: str = "cpu") -> nn.Module:
    """A network in eval mode on ``device``.

    Args:
        name: a registered model name (:func:`list_models`).
        weights: ``"default"``: the weights that ship for ``name`` (an InputError saying how to
            get some when none ship); a path: a vosuite checkpoint of that model, or a plain /
            aot-benchmark state dict; None: random initialisation. Training-free baselines take
            none, but ``propagate-features``: its backbone (default: the shipped student's encoder;
            see :func:`vosuite.models.feature_backbone.load_feature_backbone`).
        device: ``"cpu"``, ``"cuda"``, ...
    """
    from vosuite.inference.weights import load_model

    spec = get_spec(name)
    if weights is None:
        model = build_network(spec.name)
    elif isinstance(weights, str) and weights == "default":
        model = load_model(spec.name)
    else:
        model = load_model(spec.name, weights)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# Model cards
# ---------------------------------------------------------------------------------------------

_CARD_FIELD = re.compile(r"^<!--\s*vosuite-card:\s*(.*?)\s*-->", re.MULTILINE)


def card_fields(spec: ModelSpec) -> dict[str, str]:
    """The machine-readable fields of a model card: its first line
    ``<!-- vosuite-card: dev_jf=0.431 chair_jf=0.081 -->`` ({} without a card)."""
    path = spec.card_path
    if not path.is_file():
        return {}
    match = _CARD_FIELD.search(path.read_text(encoding="utf-8"))
    if match is None:
        return {}
    return dict(item.split("=", 1) for item in match.group(1).split() if "=" in item)


def trained_size(spec: ModelSpec) -> int | None:
    """The internal size the shipped weights record (None without weights or record)."""
    import torch

    if not spec.ships_weights:
        return None
    obj = torch.load(spec.weights_path, map_location="cpu", weights_only=True, mmap=True)
    size = (obj.get("inference") or {}).get("size") if isinstance(obj, dict) else None
    return size if isinstance(size, int) else None


def parameter_count(name: str) -> int:
    """Parameters of a registered model's network (built on the meta device: no memory, no init cost)."""
    import torch

    with torch.device("meta"):
        model = build_network(name)
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class ModelRow:
    """One row of ``vosuite models``."""

    name: str
    family: str
    parameters: int
    ships: bool | None  # None: a training-free baseline (needs no weights)
    size: int | None
    dev_jf: str | None
    chair_jf: str | None
    default: bool
    task: str = "semi"  # "semi" (follows given masks), "unsupervised" (vosuite discover) or "pre-training"


def model_task(spec: ModelSpec) -> str:
    """``"unsupervised"`` for Betrayed by Attention and cards that say ``task=unsupervised``,
    ``"pre-training"`` for DINO pairs, else ``"semi"``."""
    by_family = {"bba": "unsupervised", "dino": "pre-training"}
    return card_fields(spec).get("task") or by_family.get(spec.family, "semi")


def model_rows(family: str | None = None) -> list[ModelRow]:
    """The rows of ``vosuite models`` (builds every network once to count its parameters)."""
    rows = []
    for name in list_models(family):
        spec = MODELS[name]
        rows.append(ModelRow(name, spec.family, parameter_count(name), spec.ships_weights if spec.trained else None,
                             trained_size(spec), card_fields(spec).get("dev_jf"), card_fields(spec).get("chair_jf"),
                             name == DEFAULT_MODEL, model_task(spec)))
    return rows


# ---------------------------------------------------------------------------------------------
# The families and their models
# ---------------------------------------------------------------------------------------------

def _lazy(path: str) -> Callable[..., Any]:
    """``module:attribute`` imported on first use (the registry itself imports no torch)."""
    def load(*args: Any) -> Any:
        module, _, attribute = path.partition(":")
        value = getattr(importlib.import_module(module), attribute)
        return value(*args) if args else value
    return load


def _deaot_core(model: nn.Module, size: int | None, options: CoreOptions, device: str = "cpu") -> VideoCore:
    from vosuite.inference.core import InferenceCore
    from vosuite.inference.memory import MemoryConfig

    if options.merge is not None:
        raise InputError(f"--merge applies to S2S models only; {model.cfg.name} merges objects its own way")
    memory = MemoryConfig.for_model(model.cfg, long_term_gap=options.long_term_gap,
                                    max_long_term_frames=options.max_memory_frames)
    return InferenceCore(model, memory, size, device=device)


def _s2s_core(model: nn.Module, size: int | None, options: CoreOptions, device: str = "cpu") -> VideoCore:
    from vosuite.inference.s2s import MERGES, S2SInferenceCore

    if options.long_term_gap is not None or options.max_memory_frames != DEFAULT_MAX_MEMORY_FRAMES:
        raise InputError(f"--long-term-gap and --max-memory-frames apply to DeAOT models only; {model.cfg.name} "
                         "keeps one fixed-size recurrent state per object, no frame memory")
    return S2SInferenceCore(model, size, options.merge or MERGES[0], device=device)


def _baseline_core(model: nn.Module, size: int | None, options: CoreOptions, device: str = "cpu") -> VideoCore:
    from vosuite.inference.baselines import BaselineCore

    if model.cfg.task == "unsupervised":
        raise InputError(f"{model.cfg.name} is an unsupervised baseline (no prompts): run it with `vosuite discover`")
    if options != CoreOptions():
        raise InputError(f"--long-term-gap, --max-memory-frames and --merge do not apply to {model.cfg.name}, "
                         "a training-free baseline")
    if model.cfg.kind == "features":
        from vosuite.inference.feature_propagation import FeaturePropagationCore

        return FeaturePropagationCore(model, size, device=device)
    return BaselineCore(model, size, device=device)


register_family(Family("deaot", _lazy("vosuite.models.deaot:DeAOT"), _lazy("vosuite.models.deaot:DeAOTConfig"),
                       _lazy("vosuite.models.deaot:get_config"), _deaot_core,
                       recipe="configs/deaot_t_davis16.yaml", converter="aot"))
register_family(Family("s2s", _lazy("vosuite.models.s2s:S2S"), _lazy("vosuite.models.s2s:S2SConfig"),
                       _lazy("vosuite.models.s2s:get_s2s_config"), _s2s_core, recipe="configs/s2spp_davis16.yaml"))
def _bba_core(model: nn.Module, size: int | None, options: CoreOptions, device: str = "cpu") -> VideoCore:
    raise InputError(f"{model.cfg.name} is an unsupervised model (no prompts): run it with `vosuite discover`")


register_family(Family("bba", _lazy("vosuite.models.bba:BetrayedByAttention"), _lazy("vosuite.models.bba:BbAConfig"),
                       _lazy("vosuite.models.bba:get_bba_config"), _bba_core, recipe=""))


def _dino_core(model: nn.Module, size: int | None, options: CoreOptions, device: str = "cpu") -> VideoCore:
    raise InputError(f"{model.cfg.name} is a DINO pre-training network, not a tracker: pass its run's final.pt "
                     "as bba.dino_checkpoint (or to `vosuite convert dino`)")


_DINO = "vosuite.models.dino"
register_family(Family("dino", _lazy(f"{_DINO}:DINOPretraining"), _lazy(f"{_DINO}:DINOConfig"),
                       _lazy(f"{_DINO}:get_dino_config"), _dino_core, recipe=""))
_BASELINE = "vosuite.models.baseline"
register_family(Family("baseline", _lazy(f"{_BASELINE}:TrainingFreeTracker"), _lazy(f"{_BASELINE}:BaselineConfig"),
                       _lazy(f"{_BASELINE}:get_baseline_config"), _baseline_core, recipe="", trained=False))

_DEAOT_SUMMARIES = {"deaot-t": "DeAOT-T: MobileNetV2, 1 GPM layer", "deaot-s": "DeAOT-S: MobileNetV2, 2 GPM layers",
                    "deaot-b": "DeAOT-B: MobileNetV2, 3 GPM layers", "deaot-l": "DeAOT-L: MobileNetV2, 3 layers, gap 5",
                    "r50-deaot-l": "R50-DeAOT-L: ResNet-50, 3 layers, gap 5"}
#: The recipes of the shipped weights (the default student's last stage; its card names all three).
_SHIPPED_RECIPE = {"deaot-l": "configs/deaot_l_teacher_davis16.yaml",
                   "deaot-t-deform": "configs/deaot_t_imagenet_twins_davis16.yaml"}
#: The weights that ship (sha256 checked on load): the default student (fine-tuned from ImageNet), the
#: teacher and the fast student (int8 weights with float16 scales, float16 encoders; the fast student
#: takes its frozen encoder from the default's file). The distillation
#: experiment's two students (issue 13) are registered as recipes: their files no longer ship.
_SHIPPED = {"deaot-t-deform": ("deaot-t-deform.pt", "399a39dfd117a8b317a07a780322083e95c872ec2dfb2114075027529709648b"),
            "deaot-l": ("deaot-l.pt", "e923fc106c375d12036910e4a2896467ef43f40eafd5b7ff8abb80c1e4d22d46"),
            "deaot-t-deform-fast": ("deaot-t-deform-fast.pt",
                                    "6677a7a4150e32cb9774e02a0aeab647e89adff087aa350baea48e4f7fcaa17c")}
#: Other weights of a registered variant (issues 13 and 15): name -> (variant, recipe, summary).
_WEIGHT_VARIANTS = {
    "deaot-t-deform-kd": ("deaot-t-deform", "configs/distill_deaot_t_davis16.yaml",
                          "DeAOT-T deformable, distilled from deaot-l label-free (arXiv 2401.13937)"),
    "deaot-t-deform-sup": ("deaot-t-deform", "configs/deaot_t_davis16.yaml",
                           "DeAOT-T deformable, supervised, the distillation experiment's budget"),
    "deaot-t-deform-fast": ("deaot-t-deform", "configs/deaot_t_fast_imagenet_davis16.yaml",
                            "DeAOT-T deformable at internal size 96: the fast student (--runtime onnx)"),
}


def _shipped(name: str) -> dict[str, str]:
    return dict(zip(("weights", "sha256"), _SHIPPED[name], strict=True)) if name in _SHIPPED else {}


for _base, _summary in _DEAOT_SUMMARIES.items():
    register_model(_base, "deaot", summary=_summary, recipe=_SHIPPED_RECIPE.get(_base), **_shipped(_base))
for _base, _summary in _DEAOT_SUMMARIES.items():
    register_model(f"{_base}-deform", "deaot", summary=f"{_summary}, deformable attention",
                   recipe=_SHIPPED_RECIPE.get(f"{_base}-deform"), **_shipped(f"{_base}-deform"))
for _name, (_variant, _recipe, _summary) in _WEIGHT_VARIANTS.items():
    register_model(_name, "deaot", summary=_summary, recipe=_recipe, architecture=_variant, **_shipped(_name))
_S2S_SUMMARIES = {"s2s": "S2S: ConvLSTM encoder-decoder", "s2s-dist": "S2S + distance-class head",
                  "s2spp": "S2S++: skip-memory + distance-class head"}
for _suffix, _encoder in (("", "VGG-16"), ("-mnv2", "MobileNetV2")):
    for _base, _summary in _S2S_SUMMARIES.items():
        register_model(f"{_base}{_suffix}", "s2s", summary=f"{_summary} ({_encoder})")
register_model("flow", "baseline", summary="training-free: labels warped along Farneback optical flow")
register_model("flow-dis", "baseline", summary="training-free: labels warped along DIS optical flow")
register_model("copy-first", "baseline", summary="training-free: the first mask repeated (zero motion)")
register_model("propagate-features", "baseline",
               summary="training-free: labels propagated by frozen-feature similarity (DINO / CRW protocol)")
register_model("ellipse", "baseline", summary="training-free, unsupervised: a centred ellipse (the centre prior)")
register_model("motion-saliency", "baseline",
               summary="training-free, unsupervised: what moves against the camera's affine motion (flow)")
register_model("bba-vits8", "bba", summary="Betrayed by Attention: DINO ViT-S/8 + spatio-temporal block (unsupervised)")
register_model("bba-vits16", "bba", recipe="configs/bba_vits16_davis16.yaml",
               summary="Betrayed by Attention on DINO ViT-S/16 (unsupervised)")
register_model("bba-vitt16", "bba", recipe="configs/bba_vitt16_davis16.yaml",
               summary="Betrayed by Attention on a DINO ViT-Ti/16 (unsupervised, CPU-sized)")
register_model("dino-pretrain-vitt16", "dino", recipe="configs/dino_vitt16_davis16.yaml",
               summary="DINO pre-training: ViT-Ti/16 student + momentum teacher")
register_model("dino-pretrain-vits16", "dino", recipe="configs/dino_vits16_davis16.yaml",
               summary="DINO pre-training: ViT-S/16 student + momentum teacher")
register_model("dino-pretrain-vits8", "dino", summary="DINO pre-training: ViT-S/8 student + momentum teacher")
