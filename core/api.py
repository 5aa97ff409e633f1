"""The public plugin API: everything a plugin may use from Graftzoo, in one module.

A plugin imports from ``graftzoo.api`` (and its hooks module from
``graftzoo.hookspecs`` for ``hookimpl`` and the typed ``Register*``
callables). Everything else in Graftzoo is private and may change between
releases; ``tests/core/test_public_api.py`` pins these names and signatures,
and ``tests/core/test_plugin_imports.py`` checks that the first-party plugins
import nothing else. ``API_VERSION`` follows the ``graftzoo`` version a plugin
pins (``graftzoo~=0.1.0``).

Importing this module is cheap: the torch-based names (``Backbone``,
``FreezePolicy``, ``GraftModel``, ``set_trainable``) are imported on first
use, so a hooks module may import ``graftzoo.api`` without slowing down
``graft list``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.data import LabelledData, class_folder_files, is_class_folder
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
from graftzoo.registry import ModelEntry, parse_registry_file, parse_source
from graftzoo.sources import fetch, load_state_dict
from graftzoo.storage.atomic import atomic_dir

if TYPE_CHECKING:
    from graftzoo.sources.hubref import HubRepo
    from graftzoo.train.backbone import Backbone
    from graftzoo.train.interop import Exported, LinearHead, label_maps
    from graftzoo.train.model import GraftModel
    from graftzoo.train.policies import FreezePolicy, set_trainable
    from graftzoo.train.tagging import split_words

API_VERSION = "0.1"

_LAZY = {
    "Backbone": "graftzoo.train.backbone",
    "GraftModel": "graftzoo.train.model",
    "HubRepo": "graftzoo.sources.hubref",
    "FreezePolicy": "graftzoo.train.policies",
    "set_trainable": "graftzoo.train.policies",
    "split_words": "graftzoo.train.tagging",
    "Exported": "graftzoo.train.interop",
    "LinearHead": "graftzoo.train.interop",
    "label_maps": "graftzoo.train.interop",
}

__all__ = [
    "API_VERSION",
    "Backbone",
    "ChecksumError",
    "DataError",
    "Exported",
    "FreezePolicy",
    "GraftError",
    "GraftModel",
    "HubRepo",
    "LabelledData",
    "LinearHead",
    "ModelEntry",
    "OptionError",
    "PluginError",
    "RegistryError",
    "SourceError",
    "StorageError",
    "TrainingError",
    "atomic_dir",
    "cache_dir",
    "class_folder_files",
    "fetch",
    "hookimpl",
    "is_class_folder",
    "label_maps",
    "load_state_dict",
    "parse_registry_file",
    "parse_source",
    "set_trainable",
    "split_words",
]


def cache_dir(*parts: str) -> Path:
    """A directory under Graftzoo's cache root ``$GRAFTZOO_HOME`` for a plugin's own files, created if missing.

    Name it after your plugin (``cache_dir("mynet")``); ``weights``,
    ``features``, ``hashes``, ``locks``, ``models`` and ``pkg`` are Graftzoo's.
    """
    from graftzoo.home import graftzoo_home

    path = graftzoo_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'graftzoo.api' has no attribute {name!r}")
