"""Progress display for downloads: rich bars on a terminal, silence elsewhere.

Bars go to stderr under the one switch of ``graftzoo.progress``
(``GRAFTZOO_PROGRESS``), so scripted use and tests see clean output; rich is
imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from graftzoo.progress import bars_enabled as enabled

Advance = Callable[[int], None]


@contextmanager
def transfers() -> Iterator[Callable[[str, int | None], Advance]]:
    """One progress display for a pull; yields ``add(description, total) -> advance(n_bytes)``.

    Files downloaded in parallel each get a row of the same display (rich
    allows one live display at a time; ``advance`` is thread-safe).
    """
    if not enabled():
        yield lambda description, total: (lambda n: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def add(description: str, total: int | None) -> Advance:
        task = progress.add_task(description, total=total)
        return lambda n: progress.advance(task, n)

    with progress:
        yield add


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message for steps whose size is unknown (pip download)."""
    if not enabled():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
