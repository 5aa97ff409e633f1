"""Data-parallel inference beyond training: each process one shard, the results gathered once.

Under ``accelerate launch`` or ``torchrun`` (``WORLD_SIZE`` > 1) feature
extraction -- and with it ``graft rank`` and ``graft evaluate`` -- splits the
samples into contiguous shards, one per process, runs each shard on its own
process and gathers the rows once, in order, to every process. A single
process (no ``WORLD_SIZE``) never imports ``accelerate`` or
``torch.distributed`` here. The process group is the one Accelerate makes
(gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import os
from typing import Any

import torch


def world_size() -> int:
    """How many processes this command runs on (1 unless launched by accelerate/torchrun)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def _state() -> Any:
    from accelerate import PartialState

    # Initialises the process group from the launcher's environment, once (shared with the engine's
    # Accelerator). cpu=True on a machine without CUDA: otherwise Accelerate sees no distributed launch.
    return PartialState(cpu=not torch.cuda.is_available())


def rank() -> int:
    """This process's index (0 in a single process)."""
    return int(_state().process_index) if world_size() > 1 else 0


def is_main_process() -> bool:
    """True on the process that prints and writes (the only one in a single process)."""
    return rank() == 0


def inference_device(module: torch.nn.Module) -> torch.device:
    """Where a model should run inference: this process's device under a launch, else a visible GPU, else its own."""
    if world_size() > 1:
        return torch.device(_state().device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return next(iter(module.parameters()), torch.empty(0)).device


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if world_size() > 1:
        _state().wait_for_everyone()


def shard_bounds(n: int, size: int, index: int) -> tuple[int, int]:
    """Contiguous ``[lo, hi)`` of ``n`` items for process ``index`` of ``size``; sizes differ by at most one."""
    base, extra = divmod(n, size)
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def local_shard(n: int) -> tuple[int, int]:
    """This process's ``[lo, hi)`` of ``n`` items."""
    size = world_size()
    return (0, n) if size == 1 else shard_bounds(n, size, rank())


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every process's rows (each its ``local_shard(n)``) in process order, on every process.

    One collective: shards are padded to the largest and trimmed after the
    gather, so processes with one row fewer take part like the others.
    """
    size = world_size()
    if size == 1:
        return local
    import torch.distributed as dist

    _state()
    bounds = [shard_bounds(n, size, i) for i in range(size)]
    longest = max(hi - lo for lo, hi in bounds)
    device = _state().device if dist.get_backend() == "nccl" else torch.device("cpu")
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:local.shape[0]] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:hi - lo].cpu() for part, (lo, hi) in zip(parts, bounds, strict=True)])
