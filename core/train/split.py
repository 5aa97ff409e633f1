"""Seeded, stratified train/validation splits and few-shot subsets.

The same (labels, fraction, seed) always give the same split, which is how
``graft evaluate --split val`` re-creates a run's held-out data from graft.json.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from graftzoo.errors import DataError


def _key(label: Any) -> str:
    return label if isinstance(label, str) else repr(label)


def stratified_split(labels: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, val indices): each class contributes ``round(n * val_fraction)`` (at least one when it
    has two or more samples) to validation. Unhashable labels (token tags) are split at random."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-split must be in [0, 1), got {val_fraction}")
    rng = random.Random(seed)
    if val_fraction == 0.0:
        return list(range(len(labels))), []
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[_key(label) if not isinstance(label, list) else ""].append(i)
    train: list[int] = []
    val: list[int] = []
    for key in sorted(by_class):
        idx = by_class[key]
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        if n_val == 0 and len(idx) >= 2:
            n_val = 1
        n_val = min(n_val, len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return sorted(train), sorted(val)


def limit_per_class(indices: Sequence[int], labels: Sequence[Any], limit: int, seed: int) -> list[int]:
    """At most ``limit`` indices per class, chosen with ``seed`` (few-shot training)."""
    if limit < 1:
        raise DataError(f"--limit-per-class must be at least 1, got {limit}")
    rng = random.Random(seed + 1)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        by_class[_key(labels[i]) if not isinstance(labels[i], list) else ""].append(i)
    keep: list[int] = []
    for key in sorted(by_class):
        idx = list(by_class[key])
        rng.shuffle(idx)
        keep.extend(idx[:limit])
    return sorted(keep)
