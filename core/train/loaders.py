"""Training batches: the (seed, epoch) shuffle, raw-sample and cached-feature loaders, collation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from graftzoo.train.backbone import Backbone
from graftzoo.train.rows import Rows, RowsDataset


class EpochShuffle(Sampler[int]):
    """A permutation that depends only on (seed, epoch), so a resumed run sees the same batches.

    The epoch is set with ``use_epoch``, not ``set_epoch``: Accelerate's data
    loader calls ``set_epoch`` with its own iteration counter, which restarts at
    0 in a resumed process.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        """Shuffle for this (0-based) epoch of the run."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class NoSingleBatches(Sampler[list[int]]):
    """Batches of ``batch_size`` from ``sampler``; a last batch of one sample joins the batch before it.

    A batch of one breaks BatchNorm in training ("Expected more than 1 value
    per channel"), and dropping the sample would waste scarce data; so 17
    samples at batch size 8 give batches of 8 and 9.
    """

    def __init__(self, sampler: EpochShuffle, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            last = batches.pop()
            batches[-1] = batches[-1] + last
        return iter(batches)

    def __len__(self) -> int:
        n = len(self.sampler)
        full, rest = divmod(n, self.batch_size)
        return full + (rest > 1 or (rest == 1 and full == 0))


class _Pairs(Dataset[tuple[Any, Any]]):
    def __init__(self, samples: Sequence[Any], targets: Sequence[Any]) -> None:
        self.samples = samples
        self.targets = targets

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.samples[i], self.targets[i]


def make_collate(backbone: Backbone, train: bool, task: str) -> Callable[[list[tuple[Any, Any]]], tuple[Any, Any]]:
    """Batch raw (sample, target) pairs with the backbone's own collation."""

    def collate(items: list[tuple[Any, Any]]) -> tuple[Any, torch.Tensor]:
        samples = [s for s, _ in items]
        targets = [t for _, t in items]
        batch = backbone.collate(samples, train=train)
        if backbone.channels_last and isinstance(batch, torch.Tensor) and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if task == "token-classification":
            return batch, backbone.token_labels(batch, targets)
        return batch, torch.tensor(targets, dtype=torch.long)

    return collate


def sample_loader(backbone: Backbone, samples: Sequence[Any], targets: Sequence[Any], batch_size: int,
                  task: str, sampler: EpochShuffle, *, workers: int = 0) -> DataLoader[Any]:
    """Training DataLoader over raw samples, collated in ``workers`` processes (0: in the main process).

    Worker seeds come from the global RNG, which the engine seeds per (seed,
    epoch): augmentation stays reproducible for a given ``--workers``.
    """
    return DataLoader(_Pairs(samples, targets), batch_sampler=NoSingleBatches(sampler, batch_size),
                      collate_fn=make_collate(backbone, True, task), num_workers=workers,
                      prefetch_factor=2 if workers else None)


def _the_batch(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return items[0]


def feature_loader(features: Rows, targets: Sequence[int], batch_size: int,
                   sampler: EpochShuffle) -> DataLoader[Any]:
    """Training DataLoader over cached features (the ``frozen`` policy): the same batches as a ``TensorDataset``
    with the default collation, each cut in one go (``RowsDataset.__getitems__``: rows in memory in one indexing,
    5 batches of 32: 2 ms less an epoch; rows in the cache file read when a batch asks for them)."""
    return DataLoader(RowsDataset(features, targets), batch_size=batch_size, sampler=sampler, collate_fn=_the_batch)
