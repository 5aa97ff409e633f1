"""Fixtures for the vision plugin's tests: a private GRAFTZOO_HOME, small entries, real weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def graftzoo_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $GRAFTZOO_HOME per test, so caches never leak between tests or into ~/.cache."""
    home = tmp_path_factory.mktemp("graftzoo-home")
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    return home


def _make_entry(arch: str, source: str = "file:///nonexistent.safetensors", **fields: Any) -> Any:
    """A validated ModelEntry for a timm architecture (fields as in registry.toml)."""
    from graftzoo.registry import entry_from_dict

    raw = {"id": f"{arch}.test", "modality": "vision", "backbone": "timm", "source": source,
           "sha256": "0" * 64, "license": "Apache-2.0", **fields}
    return entry_from_dict(raw, "test")


@pytest.fixture
def make_entry() -> Any:
    """Build a ModelEntry for a timm architecture: make_entry(arch, **registry_fields)."""
    return _make_entry


@pytest.fixture(scope="session")
def real_weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Any, Path]]]:
    """(entry, verified local weights path) for the two offline ImageNet models, fetched once."""
    home = tmp_path_factory.mktemp("graftzoo-home-weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAFTZOO_HOME", str(home))
        from graftzoo.registry import load_registry
        from graftzoo.sources import fetch

        registry = load_registry()
        out = {}
        for model_id in ("mobilenetv2_100.tv_in1k", "efficientnet_lite0.lukemelas_in1k"):
            entry = registry.get(model_id)
            out[model_id] = (entry, fetch(entry))
        yield out
