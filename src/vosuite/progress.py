"""Progress bars for long work (rich), silent when output is not a terminal or when asked."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Update = Callable[..., None]  # update(done: int, total: int, rate: str = "")


def _no_update(done: int, total: int, rate: str = "") -> None:
    """The update of a hidden bar."""


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True, console: Console | None = None) -> Iterator[Update]:
    """Yield ``update(done, total, rate="")``; draws a bar on stderr while the block runs."""
    console = console or Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield _no_update
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=None, rate="")

        def update(done: int, total: int, rate: str = "") -> None:
            progress.update(task, completed=done, total=total, rate=rate)

        yield update
