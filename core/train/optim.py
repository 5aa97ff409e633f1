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
