"""One progress bar for long CLI work (imports, bulk jobs), shown only on a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ProgressCallback = Callable[[int, int], None]


@contextmanager
def progress_bar(
    console: Console, label: str, *, verb: str = "importing", show_from: int = 0
) -> Iterator[ProgressCallback]:
    """Yield ``progress(done, total)``; the bar appears once ``total >= show_from``."""
    with Progress(
        TextColumn(f"[bold]{verb}[/bold] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None, visible=False)

        def progress(done: int, total: int) -> None:
            if total >= show_from:
                bar.update(task, completed=done, total=total, visible=True)

        yield progress
