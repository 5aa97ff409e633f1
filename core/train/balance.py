"""Class imbalance: detect it at tune time, then weight the loss or draw the classes equally.

Two remedies, one at a time: ``--class-weights auto`` (the default) weights
the loss by inverse class frequency; ``--sampler balanced`` instead draws
every class equally often in each epoch (``BalancedSampler``), and then
``auto`` leaves the loss unweighted, since weighting a balanced draw again would
favour the rare classes twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from graftzoo.errors import OptionError
from graftzoo.train import probe
from graftzoo.train.heads import PrototypeHead
from graftzoo.train.loaders import EpochShuffle

if TYPE_CHECKING:
    from graftzoo.train.config import TrainConfig

#: Largest/smallest class ratio from which a run warns (and ``--class-weights auto`` weights the loss).
IMBALANCE_RATIO = 3.0
CLASS_WEIGHT_MODES = ("auto", "none")
SAMPLERS = ("shuffle", "balanced")


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
            "turn it off, or --sampler balanced to draw the classes equally instead)")


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
                      say: Callable[[str], None] | None, sampler: str = "shuffle") -> torch.Tensor | None:
    """A run's loss weights for ``--class-weights mode``; imbalance is announced through ``say`` with the counts.

    With ``--sampler balanced`` the draw already balances the classes: the loss stays unweighted.
    """
    counts = class_counts(targets, len(classes))
    warning = imbalance_warning(counts, classes)
    if warning is not None and sampler == "balanced":
        warning = warning.split("; the loss")[0] + "; --sampler balanced draws every class equally often each epoch"
    elif warning is not None and mode == "none":
        warning = (warning.split("; the loss")[0] + "; pass --class-weights auto to weight the loss or --sampler "
                   "balanced to draw the classes equally")
    if warning is not None and say is not None:
        say(warning)
    return None if sampler == "balanced" else class_weights(mode, counts)


class BalancedSampler(EpochShuffle):
    """An epoch of ``len(targets)`` draws with every class drawn equally often (counts differ by at most one).

    Each class walks through fresh permutations of its own samples: a rare class
    repeats its samples, a common one shows a different subset each epoch. Like
    ``EpochShuffle``, the draw depends only on (seed, epoch), so a resumed run
    sees the same batches.
    """

    def __init__(self, targets: Sequence[int], seed: int) -> None:
        super().__init__(len(targets), seed)
        labels = torch.tensor(list(targets), dtype=torch.long)
        self.members = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        k = len(self.members)
        quota = torch.full((k,), self.n // k, dtype=torch.long)
        quota[torch.randperm(k, generator=g)[: self.n % k]] += 1  # the remainder goes to random classes
        picks = []
        for members, q in zip(self.members, quota.tolist(), strict=True):
            rounds = -(-q // len(members))
            order = torch.cat([members[torch.randperm(len(members), generator=g)] for _ in range(rounds)])
            picks.append(order[:q])
        drawn = torch.cat(picks)
        return iter(drawn[torch.randperm(len(drawn), generator=g)].tolist())


def make_sampler(kind: str, targets: Sequence[int], seed: int) -> EpochShuffle:
    """The training sampler of ``--sampler kind`` over class ids ``targets``."""
    if kind not in SAMPLERS:
        raise OptionError(f"unknown --sampler {kind!r}; valid: {', '.join(SAMPLERS)}")
    return BalancedSampler(targets, seed) if kind == "balanced" else EpochShuffle(len(targets), seed)


def check_sampler_options(config: TrainConfig, task: str) -> None:
    """Refuse ``--sampler balanced`` where there is nothing to draw by class."""
    if config.sampler not in SAMPLERS:
        raise OptionError(f"unknown --sampler {config.sampler!r}; valid: {', '.join(SAMPLERS)}")
    if config.sampler == "balanced" and task != "classification":
        raise OptionError(f"--sampler balanced does not apply to {task}: a sample holds many labels, so there is "
                          "no class to draw it by; drop it")


def check_fitted_sampler(config: TrainConfig, head: torch.nn.Module) -> None:
    """Refuse ``--sampler balanced`` for a head the frozen policy fits in one go on all cached features."""
    if config.sampler != "balanced" or config.probe != "lbfgs":
        return
    if isinstance(head, PrototypeHead) or probe.linear_layer(head) is not None:
        raise OptionError("--sampler balanced draws training batches, but policy 'frozen' fits this head in one go "
                          "on all cached features (--probe lbfgs; class means for a prototype head): drop --sampler "
                          "(--class-weights auto, the default, weights the fit for imbalance) or pass --probe sgd to "
                          "train the head in batches")
