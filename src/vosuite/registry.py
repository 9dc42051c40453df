"""The model registry: names and what they stand for, nothing else (timm's ``_registry``).

Every model name maps to a :class:`ModelSpec`: its family, the architecture its weights fit, its
shipped weights file (with the file's sha256; None when none ship), its training recipe and its
task. Every family maps to a :class:`Family`: where its network and config classes live (as
``module:attribute`` paths that :mod:`vosuite.factory` imports), its task and its default recipe.

Each family registers its names beside its architecture (``vosuite/models/<family>.py``, with
:func:`register_family` and :func:`register_model`); importing :mod:`vosuite.models` registers
them all, which :mod:`vosuite.factory` does before any lookup. This module imports nothing but
:mod:`vosuite.errors` and :mod:`vosuite.options`: no torch, no files, no model names.

Weight variants are tags of an architecture: ``deaot-t-deform.fast`` holds other weights of the
``deaot-t-deform`` network. Each tag may also be reached by an alias (``deaot-t-deform-fast``), the
plain name scripts and model cards use.
"""

from __future__ import annotations

from dataclasses import dataclass

from vosuite.errors import InputError
from vosuite.options import TASKS, Task


@dataclass(frozen=True)
class Family:
    """A model family.

    Attributes:
        name: the value of a vosuite checkpoint's ``model.family``.
        network: ``module:Class`` of its network (built from a config).
        config: ``module:function`` giving the config of a registered architecture name.
        config_class: ``module:Class`` of its config dataclass (read back from checkpoints).
        task: what its models do (:data:`vosuite.options.Task`); a model may say otherwise.
        recipe: the training recipe a missing-weights message points at ("" for none).
        converter: the ``vosuite convert`` kind that reads other codes' checkpoints of this family.
        trained: whether its models learn weights (False: training-free baselines).
    """

    name: str
    network: str
    config: str
    config_class: str
    task: Task = "semi"
    recipe: str = ""
    converter: str | None = None
    trained: bool = True

    def __post_init__(self) -> None:
        _check_task(self.task, self.name)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name.

    Attributes:
        name: canonical name (lower case, ``-``; a weight variant ``architecture.tag``).
        family: its :class:`Family` name.
        architecture: the network its weights fit (the name itself for an architecture).
        weights: file name of its shipped weights under ``vosuite/weights/`` (None: none ship).
        sha256: that file's sha256 (checked when the weights load).
        recipe: its training recipe ("" : the family's).
        summary: one line for ``vosuite models``.
        task: what it does.
    """

    name: str
    family: str
    architecture: str
    weights: str | None = None
    sha256: str | None = None
    recipe: str = ""
    summary: str = ""
    task: Task = "semi"

    @property
    def tag(self) -> str | None:
        """The weight variant's tag (``fast`` of ``deaot-t-deform.fast``); None for an architecture."""
        return self.name.split(".", 1)[1] if "." in self.name else None

    @property
    def trained(self) -> bool:
        """Whether the model has weights at all (False for the training-free baselines)."""
        return FAMILIES[self.family].trained

    @property
    def card_name(self) -> str:
        """The stem of its model card ``vosuite/weights/<stem>.md``: its weights file's, else its name."""
        return self.weights.removesuffix(".pt") if self.weights else self.name

    def training_recipe(self) -> str:
        return self.recipe or FAMILIES[self.family].recipe


FAMILIES: dict[str, Family] = {}
MODELS: dict[str, ModelSpec] = {}
ALIASES: dict[str, str] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def register_model(name: str, family: str, *, tag_of: str | None = None, weights: str | None = None,
                   sha256: str | None = None, recipe: str = "", summary: str = "", task: Task | None = None,
                   alias: str | None = None) -> ModelSpec:
    """Register an architecture ``name``, or with ``tag_of`` the weight variant ``tag_of.name``
    (``alias``: another name it answers to); see :class:`ModelSpec`."""
    key = canonical_key(f"{tag_of}.{name}" if tag_of else name)
    if key in MODELS or key in ALIASES:
        raise ValueError(f"model {key!r} is registered twice")
    if family not in FAMILIES:
        raise ValueError(f"model {key!r}: unknown family {family!r}")
    architecture = canonical_key(tag_of) if tag_of else key
    if tag_of and MODELS.get(architecture) is None:
        raise ValueError(f"model {key!r}: architecture {tag_of!r} is not registered (register it first)")
    task = task or FAMILIES[family].task
    _check_task(task, key)
    MODELS[key] = spec = ModelSpec(key, family, architecture, weights, sha256, recipe, summary, task)
    if alias is not None:
        ALIASES[canonical_key(alias)] = key
    return spec


def _check_task(task: str, owner: str) -> None:
    if task not in TASKS:
        raise ValueError(f"{owner}: task {task!r} is none of {', '.join(TASKS)}")


def canonical_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def list_models(family: str | None = None, task: Task | None = None) -> list[str]:
    """Every registered model name (of ``family`` / for ``task`` when given), in registration order."""
    return [name for name, spec in MODELS.items()
            if (family is None or spec.family == family) and (task is None or spec.task == task)]


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` or of an alias (``_`` and case ignored); an unknown name is
    an InputError listing the known ones."""
    key = canonical_key(name)
    spec = MODELS.get(ALIASES.get(key, key))
    if spec is None:
        raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)} (see `vosuite models`)")
    return spec
