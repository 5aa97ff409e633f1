"""Per-epoch checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds what the run cannot rebuild: the trainable state (the whole
model, or only the head when the backbone is frozen and never changes), the
optimiser, scheduler and policy state, the history and the RNG state.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from graftzoo.errors import TrainingError
from graftzoo.storage import atomic

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint to a temp file and rename it: a kill leaves the previous one intact."""
    buffer = io.BytesIO()  # serialised first: a full disk then fails in a plain write, with a clear OS error
    torch.save(state, buffer)
    atomic.write_bytes(run_dir / CHECKPOINT, buffer.getbuffer(), "the checkpoint")


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
