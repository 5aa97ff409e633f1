"""A model is a backbone plus a head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from graftzoo.train.backbone import Backbone


class GraftModel(nn.Module):
    """``head(backbone(batch))``; for token tasks ``head(backbone.forward_tokens(batch))`` per position."""

    def __init__(self, backbone: Backbone, head: nn.Module, task: str = "classification") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.task = task

    def features(self, batch: Any) -> torch.Tensor:
        """Pooled ``[B, D]`` or, for token tasks, per-token ``[B, T, D]`` features."""
        if self.task == "token-classification":
            return self.backbone.forward_tokens(batch)
        feats: torch.Tensor = self.backbone(batch)
        return feats

    def forward(self, batch: Any) -> torch.Tensor:
        """Logits ``[B, C]`` (or ``[B, T, C]`` for token tasks)."""
        out: torch.Tensor = self.head(self.features(batch))
        return out

    def group_modules(self) -> list[tuple[str, nn.Module]]:
        """The backbone's groups, input to output (what freeze policies talk about)."""
        return self.backbone.groups()
