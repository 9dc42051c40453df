"""The table of ``vosuite models``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vosuite.registry import ModelRow


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
