"""Class imbalance: detect it at tune time and weight the loss so a rare class is not ignored."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

#: Largest/smallest class ratio from which a run warns (and ``--class-weights auto`` weights the loss).
IMBALANCE_RATIO = 3.0
CLASS_WEIGHT_MODES = ("auto", "none")


def class_counts(targets: Sequence[int], num_classes: int) -> list[int]:
    """Training samples per class id."""
    return [int(c) for c in torch.bincount(torch.tensor(list(targets), dtype=torch.long), minlength=num_classes)]


def imbalance_warning(counts: Sequence[int], classes: Sequence[str]) -> str | None:
    """A warning naming the counts when the largest class has ``IMBALANCE_RATIO`` times the smallest, else None."""
    present = [c for c in counts if c > 0]
    if not present or max(present) < IMBALANCE_RATIO * min(present):
        return None
    order = sorted(range(len(counts)), key=lambda i: counts[i])
    shown = ", ".join(f"{classes[i]}={counts[i]}" for i in order[:3])
    return (f"warning: imbalanced classes in the training split (fewest: {shown}; most: {classes[order[-1]]}="
            f"{counts[order[-1]]}); the loss is weighted by inverse class frequency (--class-weights none to "
            "turn it off)")


def class_weights(mode: str, counts: Sequence[int]) -> torch.Tensor | None:
    """Inverse-frequency weights ``n / (C * count)`` (mean 1 over samples) when ``mode`` is auto and the classes
    are imbalanced; None otherwise (plain cross-entropy)."""
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"unknown --class-weights {mode!r}; valid: {', '.join(CLASS_WEIGHT_MODES)}")
    present = [c for c in counts if c > 0]
    if mode == "none" or not present or max(present) < IMBALANCE_RATIO * min(present):
        return None
    total = sum(counts)
    return torch.tensor([total / (len(present) * c) if c else 0.0 for c in counts], dtype=torch.float32)


def run_class_weights(mode: str, targets: Sequence[int], classes: Sequence[str],
                      say: Callable[[str], None] | None) -> torch.Tensor | None:
    """A run's loss weights for ``--class-weights mode``; imbalance is announced through ``say`` with the counts."""
    counts = class_counts(targets, len(classes))
    warning = imbalance_warning(counts, classes)
    if warning is not None and mode == "none":
        warning = warning.split("; the loss")[0] + "; pass --class-weights auto to weight the loss"
    if warning is not None and say is not None:
        say(warning)
    return class_weights(mode, counts)
