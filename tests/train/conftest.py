"""Fixtures for the engine tests: the tiny CNN plugin, its pretrained weights, quick configs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.train import tiny


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pretrained tiny-CNN weights, made once per session (a few seconds of pre-training)."""
    directory = tmp_path_factory.mktemp("tiny-weights")
    tiny.pretrain(directory / "tinycnn.safetensors")
    return directory


@pytest.fixture
def tiny_plugin(tiny_weights_dir: Path, no_plugins: None) -> Iterator[str]:
    """The tiny CNN adapter, its registry entry and the ``tinydigits`` dataset; yields the model id."""
    undo = tiny.install(tiny_weights_dir)
    yield tiny.MODEL_ID
    undo()


@pytest.fixture
def config(tiny_plugin: str) -> Any:
    """A factory for quick TrainConfigs on the tiny model."""
    from graftzoo.train.config import TrainConfig

    def make(**overrides: Any) -> TrainConfig:
        base: dict[str, Any] = {"model": tiny_plugin, "data": "tinydigits", "epochs": 3, "lr": 0.01,
                                "batch_size": 16}
        return TrainConfig(**{**base, **overrides})

    return make
