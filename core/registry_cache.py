"""A parsed-registry cache, like the entry-point index: a registry file is parsed once per change.

A registry file's validated entries are kept under
``$GRAFTZOO_HOME/registry-cache/`` as ``marshal`` data (plain tuples, dicts
and strings: no code is run to read them back, and ``marshal`` is built into
the interpreter, so this module imports nothing that ``graft list`` would not
import anyway). The key is the file's resolved path, size and modification
time and the registered modalities (validation depends on them). A
2,000-entry user registry then costs one ``marshal.loads`` per ``graft list``
instead of a TOML parse and 2,000 validations. A damaged or stale cache file is
ignored and rewritten; a cache that cannot be written only costs speed.
"""

from __future__ import annotations

import binascii
import gc
import marshal
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from graftzoo.registry import ModelEntry

_FORMAT = 2
#: Files smaller than this are parsed directly: the cache would cost more than it saves.
MIN_BYTES = 4_000
_NAMES = tuple(f.name for f in fields(ModelEntry))

Document = tuple[list[ModelEntry], dict[str, str]]


def _key(path: Path) -> tuple[Path, str] | None:
    from graftzoo.home import graftzoo_home
    from graftzoo.registry import modalities

    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size < MIN_BYTES:
        return None
    resolved = str(path.resolve())
    name = f"{binascii.crc32(resolved.encode()):08x}"
    stamp = f"{_FORMAT}|{resolved}|{st.st_size}|{st.st_mtime_ns}|{','.join(sorted(modalities()))}"
    return graftzoo_home() / "registry-cache" / f"{name}.marshal", stamp


def _entry(values: tuple[Any, ...]) -> ModelEntry:
    """An entry from its saved field values (validated when the file was parsed; no second validation)."""
    entry = object.__new__(ModelEntry)
    entry.__dict__.update(zip(_NAMES, values, strict=True))
    return entry


def _read(cache: Path, stamp: str) -> Document | None:
    # Tens of thousands of new containers would trigger the cyclic GC many times over (plain data has no cycles).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(cache, "rb") as fh:
            saved = marshal.loads(fh.read())
        if isinstance(saved, tuple) and len(saved) == 3 and saved[0] == stamp:
            return [_entry(values) for values in saved[1]], dict(saved[2])
    except (OSError, EOFError, ValueError, TypeError):
        pass
    finally:
        if was_enabled:
            gc.enable()
    return None


def _write(cache: Path, stamp: str, document: Document) -> None:
    from graftzoo.errors import StorageError
    from graftzoo.storage import atomic  # only when a file changed: the temporary name 'graft cache gc' knows

    entries, adapters = document
    rows = [tuple(_plain(getattr(e, n)) for n in _NAMES) for e in entries]
    try:
        data = marshal.dumps((stamp, rows, dict(adapters)))
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(cache, data, "the parsed-registry cache")
    except (OSError, ValueError, StorageError):  # read-only cache, or a value marshal cannot write: only speed lost
        pass


def _plain(value: Any) -> Any:
    """``value`` with mappings as dicts (marshal writes only built-in types)."""
    if isinstance(value, dict) or not hasattr(value, "items"):
        return value
    return dict(value)


def cached_document(path: Path, parse: Callable[[Path], Document]) -> Document:
    """``parse(path)``, from the cache when the file has not changed since it was last parsed."""
    key = _key(path)
    if key is None:
        return parse(path)
    cache, stamp = key
    found = _read(cache, stamp)
    if found is not None:
        return found
    document = parse(path)
    _write(cache, stamp, document)
    return document
