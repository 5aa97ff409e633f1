"""A tiny CNN backbone with BatchNorm and three groups, plus digits data, registered as a test plugin.

``install(tmp_path)`` writes seeded "pretrained" weights (a short pre-training
on digits 5-9, so transfer to digits 0-4 is real), registers the adapter, a
registry entry pointing at them and the ``tinydigits`` dataset, and returns
an ``uninstall`` callable.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graftzoo import hookimpl
from graftzoo.data import LabelledData
from graftzoo.plugins import get_plugins
from graftzoo.train.backbone import Backbone

MODEL_ID = "tinycnn.test"
PLUGIN = "graftzoo-test-tiny"


class TinyCNN(Backbone):
    """stem -> stage1 -> stage2 -> global average pool; 8x8 greyscale input."""

    modality = "vision"
    feature_dim = 16
    channels_last = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.size = int((options or {}).get("image_size") or 8)
        self.augment = (options or {}).get("augment", "light") not in ("none", 0, "0", False)
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [("stem", self.stem), ("stage1", self.stage1), ("stage2", self.stage2)]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.stage2(self.stage1(self.stem(batch))).mean((2, 3))

    def preprocessing(self) -> dict[str, Any]:
        return {"size": self.size, "scale": 1 / 16}

    def collate(self, samples: list[Any], train: bool) -> torch.Tensor:
        arrays = [np.load(s) if isinstance(s, str) else s for s in samples]  # .npy paths (graft predict)
        x = torch.as_tensor(np.stack(arrays), dtype=torch.float32).unsqueeze(1) / 16.0
        if self.size != 8:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if train and self.augment:  # light augmentation, drawn from the global RNG (seeded per epoch by the engine)
            x = x + 0.05 * torch.randn_like(x)
        return x

    def lora_targets(self) -> list[str]:
        return ["stage1.0", "stage2.0"]


def create(entry: Any, weights: Path | None, options: Mapping[str, Any]) -> TinyCNN:
    model = TinyCNN(options)
    if weights is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(weights)))
    return model


def digits(classes: range | list[int] = range(5), per_class: int = 24) -> LabelledData:
    """Real 8x8 digit images from scikit-learn, ``per_class`` of each class."""
    images, target = _digits_arrays()
    samples: list[Any] = []
    labels: list[str] = []
    for c in classes:
        idx = np.flatnonzero(target == c)[:per_class]
        samples.extend(images[i] for i in idx)
        labels.extend(str(c) for _ in idx)
    parts = [hashlib.sha256(s.tobytes()).hexdigest() for s in samples]
    return LabelledData(samples, labels, name="tinydigits", modality="vision", fingerprint_parts=parts)


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits file, read directly (importing sklearn costs seconds on a busy machine)."""
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None and spec.submodule_search_locations
    raw = np.loadtxt(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz",
                     delimiter=",")
    return raw[:, :-1].reshape(-1, 8, 8), raw[:, -1].astype(int)


def load_tinydigits(location: str, **options: Any) -> LabelledData:
    return digits()


def pretrain(path: Path) -> None:
    """Pre-train on digits 5-9 (a related task) so the saved weights carry useful features."""
    torch.manual_seed(123)
    model = TinyCNN()
    head = nn.Linear(16, 5)
    data = digits(range(5, 10), per_class=30)
    x = model.collate(data.samples, train=False)
    y = torch.tensor([int(label) - 5 for label in data.labels])
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=0.02)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(head(model(x)), y).backward()
        opt.step()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


class TinyPlugin:
    """The test plugin object (hook implementations as methods)."""

    def __init__(self, weights: Path) -> None:
        self.weights = weights

    @hookimpl
    def register_backbones(self, register: Callable[..., None]) -> None:
        register("tinycnn-test", create, modality="vision")

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        register("tinydigits", load_tinydigits, modality="vision", named=True)

    @hookimpl
    def register_models(self, register: Callable[..., None]) -> None:
        register({"id": MODEL_ID, "modality": "vision", "backbone": "tinycnn-test",
                  "source": f"file://{self.weights}", "license": "MIT",
                  "sha256": hashlib.sha256(self.weights.read_bytes()).hexdigest(),
                  "tasks": ["image-classification"], "pretrained_on": "digits 5-9"})


def install(directory: Path) -> Callable[[], None]:
    """Register the tiny plugin with weights written under ``directory``; returns the undo function."""
    weights = directory / "tinycnn.safetensors"
    if not weights.exists():
        pretrain(weights)
    plugins = get_plugins()
    plugins.add(TinyPlugin(weights), PLUGIN)
    return lambda: plugins.remove(PLUGIN)
