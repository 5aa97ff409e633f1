"""Where Graftzoo keeps its files: ``$GRAFTZOO_HOME``, default ``~/.cache/graftzoo``."""

from __future__ import annotations

import os
from pathlib import Path


def graftzoo_home() -> Path:
    """The root of Graftzoo's cache (weights, features, datasets, plugin index)."""
    env = os.environ.get("GRAFTZOO_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "graftzoo"
