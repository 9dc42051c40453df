"""The table of ``vosuite models``: one row per registered model, with what its card says."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table

from vosuite.checkpoints.files import read_checkpoint
from vosuite.checkpoints.shipped import shipped_path
from vosuite.factory import create_model, list_models, ships_weights
from vosuite.options import DEFAULT_MODEL
from vosuite.registry import MODELS, ModelSpec

_CARD_FIELD = re.compile(r"^<!--\s*vosuite-card:\s*(.*?)\s*-->", re.MULTILINE)


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
    task: str = "semi"


def card_fields(spec: ModelSpec) -> dict[str, str]:
    """The machine-readable fields of a model card ``weights/<card>.md``: its first line
    ``<!-- vosuite-card: dev_jf=0.431 chair_jf=0.081 -->`` ({} without a card)."""
    path = shipped_path(f"{spec.card_name}.md")
    if not path.is_file():
        return {}
    match = _CARD_FIELD.search(path.read_text(encoding="utf-8"))
    if match is None:
        return {}
    return dict(item.split("=", 1) for item in match.group(1).split() if "=" in item)


def trained_size(spec: ModelSpec) -> int | None:
    """The internal size the shipped weights record (None without weights or record)."""
    if not ships_weights(spec):
        return None
    obj = read_checkpoint(shipped_path(spec.weights), mmap=True)
    size = (obj.get("inference") or {}).get("size") if isinstance(obj, dict) else None
    return size if isinstance(size, int) else None


def parameter_count(name: str) -> int:
    """Parameters of a registered model's network (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        model = create_model(name, weights=None)
    return sum(p.numel() for p in model.parameters())


def model_rows(family: str | None = None) -> list[ModelRow]:
    """The rows of ``vosuite models`` (builds every network once to count its parameters)."""
    rows = []
    for name in list_models(family):
        spec = MODELS[name]
        card = card_fields(spec)
        rows.append(ModelRow(name, spec.family, parameter_count(name), ships_weights(spec) if spec.trained else None,
                             trained_size(spec), card.get("dev_jf"), card.get("chair_jf"), name == DEFAULT_MODEL,
                             spec.task))
    return rows


def print_model_table(rows: list[ModelRow], console: Console | None = None) -> None:
    """One row per model: name (default marked), family, task, parameters, weights, trained size, and
    the model card's DAVIS-2016 val-dev and PUMaVOS chair J&F (in the model's task: semi-supervised
    scores follow the first mask, unsupervised ones are single-object discovery)."""
    table = Table(title="vosuite models (J&F in each model's task)")
    for column, justify in (("model", "left"), ("family", "left"), ("task", "left"), ("parameters", "right"),
                            ("weights", "left"),
                            ("trained size", "right"), ("dev J&F", "right"), ("chair J&F", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        weights = "none needed" if row.ships is None else ("ships" if row.ships else "-")
        table.add_row(f"{row.name} (default)" if row.default else row.name, row.family, row.task,
                      f"{row.parameters / 1e6:.2f} M",
                      weights, str(row.size) if row.size else "-",
                      row.dev_jf or "-", row.chair_jf or "-")
    (console or Console(width=120)).print(table)
