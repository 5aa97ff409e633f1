"""Shared fixtures: every test gets its own GRAFTZOO_HOME; plugins can be switched off per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def graftzoo_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty $GRAFTZOO_HOME for each test (caches never leak between tests or into ~/.cache)."""
    home = tmp_path_factory.mktemp("graftzoo-home")
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    # Tests never touch the internet: the hub and package index default to a closed loopback port (tests that
    # need a hub start one on 127.0.0.1 and point HF_ENDPOINT at it), and reachability is never remembered
    # across tests.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    from graftzoo.sources import availability

    monkeypatch.setattr(availability, "_reached", {})
    return home


@pytest.fixture
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the built-in plugin: GRAFTZOO_NO_PLUGINS=1 and a fresh plugin manager, restored afterwards."""
    from graftzoo.plugins import reset_plugins

    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    reset_plugins()
    yield
    monkeypatch.delenv("GRAFTZOO_NO_PLUGINS", raising=False)
    reset_plugins()
