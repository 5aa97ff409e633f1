"""Where Graftzoo keeps its files: ``$GRAFTZOO_HOME``, default ``~/.cache/graftzoo``; and where the hub cache is."""

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


def hf_cache() -> Path:
    """The Hugging Face hub cache, with huggingface_hub's own precedence, read on every call."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"
