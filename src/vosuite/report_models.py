"""The table of ``vosuite models``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vosuite.registry import ModelRow


def print_model_table(rows: list[ModelRow], console: Console | None = None) -> None:
    """One row per model: name (default marked), family, parameters, weights, trained size, dev J&F."""
    table = Table(title="vosuite models")
    for column, justify in (("model", "left"), ("family", "left"), ("parameters", "right"), ("weights", "left"),
                            ("trained size", "right"), ("dev J&F", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(f"{row.name} (default)" if row.default else row.name, row.family, f"{row.parameters / 1e6:.2f} M",
                      "ships" if row.ships else "-", str(row.size) if row.size else "-", row.dev_jf or "-")
    (console or Console(width=120)).print(table)
