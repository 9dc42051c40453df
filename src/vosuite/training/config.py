"""Training configuration: dataclasses loaded from YAML, with ``key=value`` command-line overrides.

A YAML file mirrors :class:`TrainConfig` (sections ``model``, ``data``, ``optim``, ``train``,
``val``) plus one section named after the method (``method: deaot`` reads ``deaot:`` into the
method's own ``Options`` dataclass, :mod:`vosuite.training.methods`); missing keys keep their
defaults, unknown keys are errors. Overrides use dotted keys and are parsed as YAML scalars, then
converted to the field's type::

    config = load_config("configs/smoke.yaml", ["train.total_steps=10", "deaot.top_k_percent=0.3"])
    save_config(config, run_dir / "config.yaml")

Configs written before methods had their own sections (``train.aux_loss_weight``,
``train.s2s_objects`` ...) still load: those keys move into the method's section.

Defaults follow aot-benchmark ``configs/default.py`` (the main training stage, PRE_YTB_DAV).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vosuite.errors import InputError
from vosuite.io.atomic import write_text_atomic


def _require(section: str, obj: Any, rule: str, names: Iterable[str]) -> None:
    """InputError naming ``section.name`` for each field of ``obj`` (None skipped) that breaks ``rule``:
    ``positive`` (> 0), ``count`` (>= 1), ``non-negative`` (>= 0) or ``fraction`` (0..1)."""
    checks = {"positive": (lambda v: v > 0, "> 0"), "count": (lambda v: v >= 1, ">= 1"),
              "non-negative": (lambda v: v >= 0, ">= 0"), "fraction": (lambda v: 0 <= v <= 1, "in [0, 1]")}
    holds, text = checks[rule]
    for name in names:
        value = getattr(obj, name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if item is not None and not (isinstance(item, (int, float)) and item == item and holds(item)):
                raise InputError(f"{section}.{name}: must be {text}, got {value!r}")


@dataclass
class ModelSection:
    """The network: a variant name (``deaot-t``, ``deaot-l-deform``, ``s2spp-mnv2`` ...) and optional
    initial weights."""

    name: str = "deaot-t"
    checkpoint: str | None = None  # aot-benchmark or vosuite weights to start from
    # warm start from another network (file or registered model name): every tensor whose name and
    # shape match is copied (vosuite.training.transplant), e.g. a trained student into a teacher
    init_from: str | None = None
    init_prefixes: tuple[str, ...] = ()  # only names under these prefixes; empty: every match
    # pretrained encoder weights: imagenet-mobilenetv2 (the converted file in the user's cache, `vosuite
    # convert imagenet`) or a file of `vosuite convert imagenet`; loaded before init_from and checkpoint
    encoder_init: str | None = None
    encoder_freeze_at: int = 2  # TRAIN_ENCODER_FREEZE_AT: 1 = stem, 2 = stem + first stage frozen
    # parameters under these name prefixes never train (DeAOT), e.g. [encoder.] to fine-tune the rest of
    # a shipped model: its file can then share the frozen tensors (vosuite convert half --share-from)
    frozen_prefixes: tuple[str, ...] = ()
    # "frozen": the encoder's norms keep their loaded statistics (aot-benchmark MODEL_FREEZE_BN);
    # "batch": trainable batch norms (from-scratch training), frozen back into the inference layout
    encoder_norm: str = "frozen"

    def __post_init__(self) -> None:
        _require("model", self, "non-negative", ["encoder_freeze_at"])
        if self.encoder_norm not in ("frozen", "batch"):
            raise InputError(f"model.encoder_norm: frozen or batch, got {self.encoder_norm!r}")


@dataclass
class DataSection:
    """Where training clips come from and how they are drawn (see :class:`~vosuite.training.data.ClipConfig`)."""

    dataset: str = "davis2016"  # a name of :func:`vosuite.datasets.open_dataset`
    root: str = "../shared/data/davis2016"
    split: str | None = "train"
    num_frames: int = 5  # DATA_SEQ_LEN
    size: tuple[int, int] = (465, 465)  # DATA_RANDOMCROP
    max_gap: int = 12  # DATA_RANDOM_GAP_DAVIS
    reverse_prob: float = 0.5
    static_prob: float = 0.0
    paste_prob: float = 0.3  # objects cut from other videos pasted in (AOT DATA_DYNAMIC_MERGE_PROB)
    shapes_prob: float = 0.0  # generated shapes pasted in (vosuite.training.data.shapes)
    shapes_twin_prob: float = 0.0  # chance that such a clip's distractor is a look-alike of a target
    augment: bool = True  # False: crop + flip only (no jitter, motion, elastic, pasted objects or shapes)
    min_object_pixels: int = 100
    workers: int = 0  # DataLoader worker processes

    def __post_init__(self) -> None:
        _require("data", self, "count", ["num_frames", "size", "max_gap"])
        _require("data", self, "fraction", ["reverse_prob", "static_prob", "paste_prob", "shapes_prob",
                                                  "shapes_twin_prob"])
        _require("data", self, "non-negative", ["min_object_pixels", "workers"])


@dataclass
class OptimSection:
    """AdamW with aot-benchmark's warm-up + poly learning-rate schedule (``utils/learning.py``)."""

    lr: float = 2e-4  # TRAIN_LR
    min_lr: float = 2e-5  # TRAIN_LR_MIN (MobileNetV2 encoders)
    power: float = 0.9  # TRAIN_LR_POWER
    warmup_ratio: float = 0.05  # TRAIN_LR_WARM_UP_RATIO
    cosine: bool = False  # TRAIN_LR_COSINE_DECAY
    encoder_lr_ratio: float = 0.1  # TRAIN_LR_ENCODER_RATIO
    weight_decay: float = 0.07  # TRAIN_WEIGHT_DECAY
    no_decay_keys: list[str] = field(default_factory=lambda: [
        "absolute_pos_embed", "relative_position_bias_table", "relative_emb_v", "conv_out"])
    clip_grad_norm: float = 5.0  # TRAIN_CLIP_GRAD_NORM
    ema_ratio: float = 0.1  # TRAIN_EMA_RATIO: decay = 1 - 1 / (total_steps * ratio)

    def __post_init__(self) -> None:
        _require("optim", self, "positive", ["lr", "ema_ratio"])
        _require("optim", self, "non-negative", ["min_lr", "power", "encoder_lr_ratio", "weight_decay",
                                                 "clip_grad_norm"])
        _require("optim", self, "fraction", ["warmup_ratio"])
        if self.min_lr > self.lr:
            raise InputError(f"optim.min_lr ({self.min_lr:g}) is above optim.lr ({self.lr:g})")


@dataclass
class TrainSection:
    """The loop: steps, batch, checkpoints, logging, device (the method's own knobs are in its section)."""

    total_steps: int = 100_000  # TRAIN_TOTAL_STEPS
    batch_size: int = 16  # TRAIN_BATCH_SIZE, global (split over the ranks)
    seed: int = 0
    amp: bool = False  # bf16 autocast (off: slower than fp32 on CPU)
    channels_last: bool = False  # the network in channels-last layout (faster convolutions on CPU)
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch threads per process
    log_every: int = 10
    checkpoint_every: int = 1000
    # wall-clock budget of this process ("90m", "1h30m", "3600" seconds): then last.pt and latest.pt
    # (EMA weights) are written and the run stops cleanly; `vosuite train --resume` continues it
    time_budget: str | None = None
    checkpoint_minutes: float | None = 10.0  # also write last.pt every N minutes (None: steps only)
    find_unused_parameters: bool = True  # DDP: the ID bank gets no gradient in sequential training
    progress: bool = True

    def __post_init__(self) -> None:
        _require("train", self, "count", ["total_steps", "batch_size", "log_every", "checkpoint_every", "threads"])
        _require("train", self, "positive", ["checkpoint_minutes"])
        parse_duration(self.time_budget)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise InputError(f"train.device: auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass
class ValSection:
    """Validation with the real evaluator (J&F) every ``every`` steps; 0 disables it."""

    every: int = 0
    dataset: str = "davis2016"
    root: str = "../shared/data/davis2016"
    split: str | None = "val"
    videos: list[str] = field(default_factory=list)  # subset of the split; empty = all
    size: int | None = None  # internal resolution of the Segmenter
    use_ema: bool = True

    def __post_init__(self) -> None:
        _require("val", self, "non-negative", ["every"])
        _require("val", self, "count", ["size"])


@dataclass
class TrainConfig:
    """A whole training recipe."""

    method: str = "deaot"  # a name of vosuite.training.methods.METHODS
    name: str = "run"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    val: ValSection = field(default_factory=ValSection)
    #: the method's ``Options`` (YAML: the section named after the method); None = its defaults
    method_options: Any = None


# ---------------------------------------------------------------------------------------------
# Typed conversion
# ---------------------------------------------------------------------------------------------

def _is_optional(tp: Any) -> tuple[bool, Any]:
    """(True, X) for ``X | None`` / ``Optional[X]``, else (False, tp)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _number_from_text(value: str, tp: type, key: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string: numbers written that way are accepted."""
    try:
        return tp(value)
    except ValueError:
        raise InputError(f"{key}: expected {tp.__name__}, got {value!r}") from None


def _convert_scalar(value: Any, tp: type, key: str) -> Any:
    if tp in (int, float) and isinstance(value, str):
        return _number_from_text(value, tp, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{key}: expected true/false, got {value!r}")
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{key}: expected {tp.__name__}, got {value!r}")


def convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` (parsed YAML) as type ``tp``; raises :class:`InputError` naming ``key``."""
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise InputError(f"{key}: may not be null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise InputError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, key)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and Ellipsis not in args:
            if len(value) != len(args):
                raise InputError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        items = [convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return _convert_scalar(value, tp, key)


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from a mapping; unknown keys are errors, missing keep defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - names)
    if unknown:
        where = prefix or cls.__name__
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {name: convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
              for name, value in data.items()}
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (lists for tuples) of a config dataclass, for YAML / JSON / checkpoints."""
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


# ---------------------------------------------------------------------------------------------
# Overrides, files
# ---------------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str | None, key: str = "train.time_budget") -> float | None:
    """Seconds of ``"90m"``, ``"1h30m"``, ``"45s"``, ``"2h"`` or a plain number of seconds; None stays None."""
    if text is None:
        return None
    value = str(text).strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
            raise InputError(f"{key}: {text!r} is not a duration (e.g. 90m, 1h30m, 3600)") from None
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise InputError(f"{key}: {text!r} must be positive")
    return seconds


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], 1e-4); the value is a YAML scalar / flow list."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"override {text!r}: expected key=value (e.g. train.total_steps=100)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"override {text!r}: cannot parse the value ({yaml_error_line(exc)})") from None
    if isinstance(value, str) and value.lower() in ("none", "null", "~"):
        value = None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set every ``key=value`` in the nested dict ``data`` (in place) and return it."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"override {text!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return data


def yaml_error_line(error: yaml.YAMLError) -> str:
    """A YAML parse error as one line: ``line L, column C: problem``."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return "invalid YAML: " + where + " ".join(str(problem).split())


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML file (empty file: {})."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected a YAML recipe)") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: {yaml_error_line(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def config_from_data(data: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a parsed YAML mapping: the common sections, then the method's
    section (named after ``method``) into its ``Options``."""
    from vosuite.training.methods import list_methods, method_class

    data = {key: dict(value) if isinstance(value, Mapping) else value for key, value in data.items()}
    method_name = data.get("method", TrainConfig.method)
    if not isinstance(method_name, str):
        raise InputError(f"method: expected a name, got {method_name!r}")
    method = method_class(method_name)
    if "method_options" in data:
        raise InputError(f"method_options: unknown key; the method's options go in the `{method_name}:` section")
    for other in list_methods():
        if other != method_name and other in data:
            raise InputError(f"{other}: options of method {other}, but the config says `method: {method_name}` "
                             f"(drop the section or set method: {other})")
    section = data.pop(method_name, None) or {}
    if not isinstance(section, Mapping):
        raise InputError(f"{method_name}: expected a mapping, got {section!r}")
    section = dict(section)
    config = from_dict(TrainConfig, data)
    config.method_options = from_dict(method.Options, section, method_name)
    return config


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """The config of YAML file ``path`` (None: the defaults) with ``key=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    return config_from_data(apply_overrides(data, overrides))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The YAML form of a config: the common sections, then the method's section."""
    data = to_dict(config)
    options = data.pop("method_options")
    if options is not None:
        data[config.method] = options
    return data


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
