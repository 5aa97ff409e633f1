"""Graftzoo: a plugin-based model zoo for transfer learning.

Importing ``graftzoo`` is cheap: no torch, timm or transformers. The training
engine lives in ``graftzoo.train`` and is imported only when it is used.
"""

from __future__ import annotations

from graftzoo.errors import (
    ChecksumError,
    DataError,
    GraftError,
    OptionError,
    PluginError,
    RegistryError,
    SourceError,
    StorageError,
    TrainingError,
)
from graftzoo.hookspecs import hookimpl
from graftzoo.plugins import get_plugins
from graftzoo.registry import ModelEntry, Registry, load_registry, parse_source

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "DataError",
    "GraftError",
    "ModelEntry",
    "OptionError",
    "PluginError",
    "Registry",
    "RegistryError",
    "SourceError",
    "StorageError",
    "TrainingError",
    "__version__",
    "get_plugins",
    "hookimpl",
    "load_registry",
    "parse_source",
]
