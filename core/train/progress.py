"""rich progress bars for long steps, silent when output is not a terminal or disabled."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a rich bar on a terminal (``GRAFTZOO_PROGRESS=1`` forces it)."""
    show = enabled and (sys.stderr.isatty() or os.environ.get("GRAFTZOO_PROGRESS") == "1")
    if not show:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)
