"""Epoch checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds what the run cannot rebuild: the trainable state (the whole
model, or only the head when the backbone is frozen and never changes), the
optimiser, scheduler and policy state, the history and the RNG state.

The engine hands an epoch's checkpoint to a ``CheckpointWriter`` (every epoch's,
unless epochs are so short that checkpoints would pass about 1% of the
training time: ``engine.Trainer._checkpoint_due``): the state
is serialised at once into memory (11 ms for 27 MB; the bytes are the
snapshot, no second copy of the tensors), and written, flushed to disk and
renamed in a background thread while the next epoch trains (measured in
bench/engine_bench.py: on a full MobileNetV2 fine-tune the 27 MB checkpoint
took 0.11-0.21 s of a 1.1-1.5 s epoch when written in line). At
most one write is pending: the next checkpoint, an interruption and the end
of the run wait for it, and its error (a full disk) is raised there.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from graftzoo.errors import TrainingError
from graftzoo.storage import atomic

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint to a temp file and rename it: a kill leaves the previous one intact."""
    _write(run_dir, _serialised(state))


def _serialised(state: dict[str, Any]) -> io.BytesIO:
    buffer = io.BytesIO()  # serialised first: a full disk then fails in a plain write, with a clear OS error
    torch.save(state, buffer)
    return buffer


def _write(run_dir: Path, buffer: io.BytesIO) -> None:
    atomic.write_bytes(run_dir / CHECKPOINT, buffer.getbuffer(), "the checkpoint")


class CheckpointWriter:
    """Writes one checkpoint at a time in a background thread (see the module docstring)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, run_dir: Path, state: dict[str, Any], then: Callable[[], None] | None = None) -> None:
        """Serialise ``state`` now (the bytes are the snapshot: later steps change the live tensors); write them
        to disk (then call ``then``, e.g. metrics.jsonl) in the background."""
        self.wait()
        buffer = _serialised(state)

        def write() -> None:
            try:
                _write(run_dir, buffer)
                if then is not None:
                    then()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread by wait()
                self._error = exc

        self._thread = threading.Thread(target=write, name="graft-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        """Block until the pending write is on disk; raise its error, if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last checkpoint (tensors, numbers and strings only: ``weights_only=True``), or None."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise TrainingError(f"{path}: unreadable checkpoint ({type(exc).__name__}); it was not written by graft "
                            f"or was damaged after; delete it and resume {run_dir} to start it again") from None
    if not isinstance(state, dict) or not {"epoch", "optimizer"} <= set(state):
        raise TrainingError(f"{path}: not a graft checkpoint; delete it and resume {run_dir} to start it again")
    return state
