"""Pieces of the training loop: data loading, optimiser groups, L2-SP, train/eval modes, checkpoints."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from graftzoo.train.backbone import Backbone
from graftzoo.train.model import GraftModel
from graftzoo.train.policies import FreezePolicy

CHECKPOINT = "checkpoint.pt"


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
                  task: str, sampler: EpochShuffle) -> DataLoader[Any]:
    """Training DataLoader over raw samples (collated in the main process: two cores, no workers)."""
    return DataLoader(_Pairs(samples, targets), batch_size=batch_size, sampler=sampler,
                      collate_fn=make_collate(backbone, True, task))


def feature_loader(features: torch.Tensor, targets: Sequence[int], batch_size: int,
                   sampler: EpochShuffle) -> DataLoader[Any]:
    """Training DataLoader over cached features (the ``frozen`` policy)."""
    dataset = torch.utils.data.TensorDataset(features, torch.tensor(list(targets), dtype=torch.long))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def param_groups(model: GraftModel, lr: float, lr_decay: float, weight_decay: float,
                 head_only: bool = False) -> list[dict[str, Any]]:
    """Optimiser groups: the head and the top backbone group at ``lr``, group i from the top at ``lr * lr_decay**i``.

    ``--lr-decay 1`` means one learning rate everywhere. Every parameter that
    exists is included (trainable now or later, so ``Gradual`` keeps one
    optimiser); biases and norm weights get no weight decay.
    """
    seen: set[int] = set()
    groups: list[dict[str, Any]] = []

    def add(name: str, params: Sequence[tuple[str, nn.Parameter]], group_lr: float) -> None:
        decay = [p for n, p in params if id(p) not in seen and p.dim() > 1]
        no_decay = [p for n, p in params if id(p) not in seen and p.dim() <= 1]
        for plist, wd, suffix in ((decay, weight_decay, ""), (no_decay, 0.0, "/no_decay")):
            if plist:
                groups.append({"params": plist, "lr": group_lr, "weight_decay": wd, "name": name + suffix})
                seen.update(id(p) for p in plist)

    add("head", list(model.head.named_parameters()), lr)
    if head_only:
        return groups
    backbone_groups = model.group_modules()
    for i, (name, module) in enumerate(reversed(backbone_groups)):
        add(f"backbone.{name}", list(module.named_parameters()), lr * lr_decay ** i)
    add("backbone.other", list(model.backbone.named_parameters()), lr * lr_decay ** len(backbone_groups))
    return groups


def cosine(epochs: int) -> Callable[[int], float]:
    """Per-epoch cosine schedule from 1 to ~0 (one-epoch runs keep a constant learning rate)."""
    return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / epochs)) if epochs > 1 else 1.0


class L2SP:
    """``alpha/2 * sum ||w - w0||^2`` over trainable backbone weights: pulls toward the pretrained start."""

    def __init__(self, backbone: nn.Module, alpha: float) -> None:
        self.alpha = alpha
        self.start = {n: p.detach().clone() for n, p in backbone.named_parameters()} if alpha > 0 else {}

    def penalty(self, backbone: nn.Module) -> torch.Tensor | None:
        if self.alpha <= 0:
            return None
        terms = [((p - self.start[n]) ** 2).sum() for n, p in backbone.named_parameters()
                 if p.requires_grad and n in self.start]
        return 0.5 * self.alpha * torch.stack(terms).sum() if terms else None


def set_modes(model: GraftModel, policy: FreezePolicy) -> None:
    """Head in train mode; backbone groups in train mode only when the policy trains them (BN stats fixed)."""
    model.train()
    model.backbone.eval()
    active = policy.train_groups(model)
    for name, module in model.group_modules():
        if name in active:
            module.train()


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint to a temp file and rename it: a kill leaves the previous one intact."""
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".checkpoint.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, run_dir / CHECKPOINT)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last checkpoint (tensors, numbers and strings only: ``weights_only=True``), or None."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state
