"""Fixtures for core tests: an isolated home and registry, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graftzoo.plugins import reset_plugins

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh plugin manager without entry points, restored afterwards."""
    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    reset_plugins()
    yield
    monkeypatch.delenv("GRAFTZOO_NO_PLUGINS")
    reset_plugins()


def run_graft(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m graftzoo ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "graftzoo", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )
