"""A small 1-D CNN backbone: stem, two blocks, global average pooling."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graftzoo.api import Backbone, ModelEntry, OptionError, load_state_dict

OPTIONS = ("length",)


class SignalCNN(Backbone):
    modality = "signal"
    feature_dim = 16

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        self.stem = nn.Sequential(nn.Conv1d(1, 8, 7, padding=3), nn.BatchNorm1d(8), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv1d(8, 16, 5, stride=2, padding=2), nn.BatchNorm1d(16), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv1d(16, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU())

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [("stem", self.stem), ("block1", self.block1), ("block2", self.block2)]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(self.stem(batch))).mean(-1)

    def preprocessing(self) -> dict[str, Any]:
        return {"length": self.length}

    def collate(self, samples: list[Any], train: bool) -> torch.Tensor:
        arrays = [np.load(s) if isinstance(s, str) else np.asarray(s) for s in samples]
        fixed = [np.pad(a, (0, max(0, self.length - a.shape[0])))[: self.length] for a in arrays]
        x = torch.as_tensor(np.stack(fixed), dtype=torch.float32).unsqueeze(1)
        if train:
            x = x + 0.05 * torch.randn_like(x)
        return x


def create(entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> SignalCNN:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"{entry.id}: the sigcnn adapter has no option {unknown[0]!r}; valid: {', '.join(OPTIONS)}")
    model = SignalCNN(int(options.get("length") or entry.input.get("length", 128)))
    if weights is not None:
        model.load_state_dict(load_state_dict(weights))
    return model


def write_weights(path: Path, seed: int = 0) -> None:
    """Seeded weights, pre-trained a little on other frequencies so the features carry signal."""
    from safetensors.torch import save_file

    from graftzoo_signal.data import synthetic

    torch.manual_seed(seed)
    model, head = SignalCNN(128), nn.Linear(16, 3)
    signals, labels = synthetic(per_class=30, frequencies=(3.0, 7.0, 12.0), seed=seed + 100)
    x = model.collate(list(signals), train=False)
    y = torch.as_tensor(labels)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=0.02)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(head(model(x)), y).backward()
        opt.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
