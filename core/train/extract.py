"""The backbone over samples at bare-model speed: decoding beside the model, inference mode.

``forward_features`` is the compute loop behind ``extract_features``: the
backbone's own (deterministic) collation decodes and preprocesses a batch at
a time while the model runs the previous one -- in ``--workers N`` DataLoader
processes, or by default in one decoding thread (one spare CPU, or little to
decode) or in worker processes (two spare CPUs or more and decoding that
would outlast starting them; ``decoding_plan``) -- and the model runs under
``torch.inference_mode`` with channels_last images. Under a multi-process
launch each process runs its own shard (``graftzoo.train.parallel``) and the
rows are gathered once.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from graftzoo.progress import progress_bar
from graftzoo.train import parallel
from graftzoo.train.backbone import Backbone

#: What decoding worker processes cost to start and stop (fork, start-up, the wait for their first batch,
#: shutdown): 0.12-0.15 s measured on a 2-CPU machine.
WORKER_START_S = 0.15


def default_workers() -> int:
    """Decoding workers per process: one fewer than this process's share of the CPUs (at most 8)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // parallel.world_size() - 1))


def decoding_plan(batches_left: int, first_batch_s: float, workers: int | None) -> tuple[str, int]:
    """Where the batches after the first are decoded: ``("here", 0)``, ``("thread", 1)`` or ``("processes", n)``.

    ``--workers N`` is obeyed (0: here). By default: nothing spare (one CPU) -- here; worker processes when
    there are two spare CPUs or more and decoding the rest here (judged by the first batch) would outlast
    starting them; else one decoding thread, which costs nothing to start and moves no batch between processes.
    """
    if workers is not None:
        return ("processes", workers) if workers > 0 else ("here", 0)
    spare = default_workers()
    if spare == 0 or batches_left == 0:
        return "here", 0
    if spare >= 2 and batches_left * first_batch_s > WORKER_START_S:
        return "processes", spare
    return "thread", 1


class _Listed(Dataset[Any]):
    """A sequence of samples as a map-style dataset."""

    def __init__(self, samples: Sequence[Any]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Any:
        return self.samples[i]


class _Collate:
    """Picklable deterministic collation (for worker processes started by spawn as well as fork)."""

    def __init__(self, backbone: Backbone, train: bool = False) -> None:
        self.backbone = backbone
        self.train = train

    def __call__(self, samples: list[Any]) -> Any:
        batch = self.backbone.collate(samples, train=self.train)
        if self.backbone.channels_last and isinstance(batch, torch.Tensor) and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


def forward_features(backbone: Backbone, samples: Sequence[Any], *, batch_size: int = 64,
                     device: torch.device | None = None, workers: int | None = None,
                     progress: bool = True, train: bool = False) -> torch.Tensor:
    """Pooled float32 CPU features ``[N, feature_dim]`` of ``samples`` in order (every process gets all rows).

    ``train``: the augmenting collation (one view per sample), decoded in this process so that the
    views are drawn from torch's global RNG, as the caller seeded it.
    """
    from graftzoo.train.features import to_device

    lo, hi = parallel.local_shard(len(samples))
    shard = samples[lo:hi]
    dev = device if device is not None else parallel.inference_device(backbone)
    if any(t.device != dev for t in itertools.chain(backbone.parameters(), backbone.buffers())):
        backbone.to(dev)  # (a no-op .to() still walks every tensor: 16 ms for MobileNetV2)
    was_training = backbone.training
    switched = any(m.training for m in backbone.modules())  # eval() and back: 9 ms when nothing changes
    if switched:
        backbone.eval()
    local: torch.Tensor | None = None  # filled batch by batch: no list of chunks concatenated (a second copy)
    done = 0
    try:
        title = "extracting augmented features" if train else "extracting features"
        with progress_bar(title, total=len(samples), enabled=progress) as advance, \
                torch.inference_mode():
            for batch in _batches(backbone, shard, batch_size, 0 if train else workers, train, dev):
                out = backbone(to_device(batch, dev, backbone.channels_last)).float()
                if local is None:
                    with torch.inference_mode(False):  # a normal tensor for the caller
                        local = torch.empty((len(shard), *out.shape[1:]), dtype=torch.float32)
                local[done:done + out.shape[0]] = out
                done += out.shape[0]
                advance(out.shape[0] * parallel.world_size())
    finally:
        if switched:
            backbone.train(was_training)
    if local is None:
        local = torch.zeros(0, backbone.feature_dim)
    return parallel.gather_rows(local, len(samples))


def _batches(backbone: Backbone, shard: Sequence[Any], batch_size: int, workers: int | None, train: bool,
             device: torch.device) -> Iterator[Any]:
    """The collated batches of ``shard`` in order: the first decoded here, the rest where ``decoding_plan`` says
    (the first batch's time decides by default)."""
    if not shard:
        return
    collate = _Collate(backbone, train)
    t0 = time.perf_counter()
    first = collate(list(shard[:batch_size]))
    rest = shard[batch_size:]
    chunks = [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    where, n_workers = decoding_plan(len(chunks), time.perf_counter() - t0, workers) if not train else ("here", 0)
    if where == "thread":
        with ThreadPoolExecutor(1, thread_name_prefix="graft-decode") as pool:
            pending = deque(pool.submit(collate, list(chunk)) for chunk in chunks[:_AHEAD])  # while the first runs
            yield first
            yield from _in_order(pool, pending, collate, chunks[_AHEAD:])
    elif where == "processes":
        batches = iter(DataLoader(_Listed(rest), batch_size=batch_size, shuffle=False, collate_fn=collate,
                                  num_workers=n_workers, pin_memory=device.type == "cuda", prefetch_factor=_AHEAD))
        yield first  # the workers start, and decode ahead, while the first batch runs
        yield from batches
    else:
        yield first
        yield from (collate(list(chunk)) for chunk in chunks)


#: Batches decoded ahead of the model (per worker process, or by the decoding thread).
_AHEAD = 2


def _in_order(pool: ThreadPoolExecutor, pending: deque[Any], collate: _Collate,
              chunks: list[Sequence[Any]]) -> Iterator[Any]:
    """The decoding thread's batches in order, keeping ``_AHEAD`` decoding while the model runs.

    With one spare CPU a thread does what one worker process would, without starting a process or moving
    every batch through shared memory (which cost the model's process more CPU than decoding the digits
    itself: 2.48 s against 2.27 s for the bare forward over 1,797 samples). PIL and torch release the GIL
    while they decode, resize and normalise.
    """
    for chunk in chunks:
        batch = pending.popleft().result()
        pending.append(pool.submit(collate, list(chunk)))
        yield batch
    while pending:
        yield pending.popleft().result()
