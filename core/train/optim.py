"""Optimisation pieces of the engine: parameter groups with layer-wise decay, the schedule, L2-SP, modes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from graftzoo.train.model import GraftModel
from graftzoo.train.policies import FreezePolicy


def param_groups(model: GraftModel, lr: float, lr_decay: float, weight_decay: float,
                 head_only: bool = False, *, backbone_scale: float = 1.0) -> list[dict[str, Any]]:
    """Optimiser groups: the head at ``lr``, backbone group i from the top at ``lr * backbone_scale * lr_decay**i``.

    ``--lr-decay 1`` with a scale of 1 means one learning rate everywhere. Every parameter that
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
    top = lr * backbone_scale
    for i, (name, module) in enumerate(reversed(backbone_groups)):
        add(f"backbone.{name}", list(module.named_parameters()), top * lr_decay ** i)
    add("backbone.other", list(model.backbone.named_parameters()), top * lr_decay ** len(backbone_groups))
    return groups


SCHEDULERS = ("cosine", "linear", "constant")


def schedule(name: str, epochs: int, warmup: int = 0) -> Callable[[int], float]:
    """Per-epoch lr factor: ``warmup`` epochs rising linearly to 1, then cosine/linear decay or constant.

    The factor for epoch e (0-based) is the one the optimiser uses during that epoch; one-epoch runs keep
    a constant learning rate.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    warmup = max(0, min(warmup, epochs - 1))
    rest = epochs - warmup

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        t = epoch - warmup
        if name == "constant" or rest <= 1:
            return 1.0
        if name == "linear":
            return 1.0 - t / rest
        return 0.5 * (1 + math.cos(math.pi * t / rest))

    return factor


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
