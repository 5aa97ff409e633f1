"""Run directories that are never half there, and one writer per run directory.

A new run directory is built complete (with its graft.json) under a temporary
name and renamed into place, so a directory that exists is always a run that
``graft tune --resume`` can continue, whenever the process was killed. While a
run is being written its directory is locked (``graftzoo.storage.locks``): a
second ``graft tune`` into the same ``--out`` refuses at once and names the
first; the lock of a killed process is taken over.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from graftzoo.errors import TrainingError
from graftzoo.storage import atomic, locks

P = ParamSpec("P")
R = TypeVar("R")


def create_run_dir(out: Path, info: dict[str, Any], write_info: Callable[[Path, dict[str, Any]], None]) -> None:
    """Make ``out`` a run directory holding only graft.json, in one rename (an existing ``out`` is replaced)."""
    from graftzoo.train.run import INFO

    with atomic.atomic_dir(out, f"the run directory {out}", replace=True) as tmp:
        write_info(tmp / INFO, info)


def _main_process() -> bool:
    # Under torchrun / accelerate launch every process runs the engine; only rank 0 writes the run.
    return os.environ.get("RANK", "0") == "0"


def refuse_if_busy(out: Path) -> None:
    """A ``TrainingError`` naming the process that is writing ``out`` (another one than this), if any."""
    busy = locks.holder(out) if _main_process() else None
    if busy is not None:
        raise TrainingError(f"{out} is being written by {busy}; wait for it to finish (or stop it), or choose "
                            "another --out")


def locked_run(param: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Hold the lock of the run directory passed as ``param`` while the decorated function writes it."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not _main_process():
                return fn(*args, **kwargs)
            out = Path(signature.bind(*args, **kwargs).arguments[param])
            with locks.exclusive(out, f"the run {out}"):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
