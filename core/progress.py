"""Progress bars for long steps: one switch, ``GRAFTZOO_PROGRESS``.

Unset: bars on stderr when it is a terminal. ``GRAFTZOO_PROGRESS=1`` forces
them (e.g. under a pager), ``GRAFTZOO_PROGRESS=0`` turns them off everywhere
(scripts, tests). rich is imported only when a bar is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def bars_enabled() -> bool:
    """True when progress bars should be drawn (see the module docstring)."""
    switch = os.environ.get("GRAFTZOO_PROGRESS", "")
    if switch in ("0", "1"):
        return switch == "1"
    return sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich bar when ``enabled`` and the switch allows it."""
    if not (enabled and bars_enabled()):
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)

