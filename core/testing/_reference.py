"""A tiny reference backbone for checking freeze policies and heads without any real model.

It has what real backbones have and policies must handle: three groups (a
convolutional stem with BatchNorm, a strided block without biases, a linear
projection with LayerNorm), biases and bias-free layers, BatchNorm running
statistics, and a LoRA target.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from graftzoo.train.backbone import Backbone


class ReferenceBackbone(Backbone):
    """stem (conv+BN) -> block (conv without bias+BN) -> top (linear+LayerNorm); features [B, 6]."""

    modality = "vision"
    feature_dim = 6

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.top = nn.Sequential(OrderedDict(fc=nn.Linear(8, 6), norm=nn.LayerNorm(6)))

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [("stem", self.stem), ("block", self.block), ("top", self.top)]

    def forward(self, batch: Any) -> torch.Tensor:
        x = self.block(self.stem(batch)).mean(dim=(2, 3))
        out: torch.Tensor = self.top(x)
        return out

    def preprocessing(self) -> dict[str, Any]:
        return {"image_size": 8, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

    def collate(self, samples: list[Any], train: bool) -> torch.Tensor:
        batch = torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in samples])
        return batch.flip(-1) if train else batch

    def lora_targets(self) -> list[str]:
        return ["fc"]


def reference_samples(n: int = 4) -> list[torch.Tensor]:
    """``n`` fixed random 3x8x8 images for the reference backbone."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(3, 8, 8, generator=generator) for _ in range(n)]
