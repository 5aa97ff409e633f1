"""A parsed-registry cache, like the entry-point index: large user registries are parsed once per change.

A registry file's validated entries are pickled under
``$GRAFTZOO_HOME/registry-cache/`` keyed by the file's path, size and
modification time and by the registered modalities (validation depends on
them). A 2,000-entry user registry then costs one unpickle per ``graft list``
instead of a TOML parse and 2,000 validations. The cache is ours (written only
by this module, under the user's own cache root), so unpickling it is safe; a
damaged or stale file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_FORMAT = 1
#: Files smaller than this are parsed directly: the cache would cost more than it saves.
MIN_BYTES = 32_000


def _key(path: Path) -> tuple[Path, str] | None:
    from graftzoo.home import graftzoo_home
    from graftzoo.registry import modalities

    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size < MIN_BYTES:
        return None
    resolved = path.resolve()
    name = hashlib.sha256(str(resolved).encode()).hexdigest()[:24]
    stamp = f"{_FORMAT}|{resolved}|{st.st_size}|{st.st_mtime_ns}|{','.join(sorted(modalities()))}"
    return graftzoo_home() / "registry-cache" / f"{name}.pickle", stamp


def cached_document(path: Path, parse: Callable[[Path], T]) -> T:
    """``parse(path)``, from the cache when the file has not changed since it was last parsed."""
    key = _key(path)
    if key is None:
        return parse(path)
    cache, stamp = key
    try:
        with open(cache, "rb") as fh:
            saved: Any = pickle.load(fh)
        if isinstance(saved, tuple) and len(saved) == 2 and saved[0] == stamp:
            result: T = saved[1]
            return result
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        pass
    result = parse(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump((stamp, result), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only cache only costs speed
    return result
