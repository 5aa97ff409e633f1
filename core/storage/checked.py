"""Cache files that carry their own checksum: converted weights and cached features.

``save_checked(path, data)`` writes ``path`` and, beside it, ``path.sha256``
(``{"sha256": ..., "size": ...}``), both atomically. ``read_checked`` compares
size and sha256 of what it reads with that record on every read (the bytes
are read anyway, so the hash is the only extra cost); an entry that is
incomplete (no record: the writer was killed between the two renames) or
damaged (bit rot, truncation, an edit) is removed and reported as absent, so
the caller rebuilds it and never uses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from graftzoo.storage import atomic

SIDECAR = ".sha256"
log = logging.getLogger("graftzoo.cache")


def sidecar(path: Path) -> Path:
    """The checksum record of a checked cache file."""
    return path.with_name(path.name + SIDECAR)


def save_checked(path: Path, data: bytes, what: str) -> str:
    """Write ``data`` to ``path`` with its checksum record; return the sha256."""
    digest = hashlib.sha256(data).hexdigest()
    atomic.write_bytes(path, data, what)
    atomic.write_json(sidecar(path), {"sha256": digest, "size": len(data)}, f"{what} (checksum)")
    return digest


@dataclass(frozen=True)
class Check:
    """The state of one checked cache file: ``ok``, ``missing``, or why it is damaged."""

    path: Path
    status: str  # "ok" | "missing" | "no checksum record" | "size differs" | "checksum differs" | "unreadable"
    data: bytes | None = None

    @property
    def damaged(self) -> bool:
        """True when the entry exists but must not be used."""
        return self.status not in ("ok", "missing")


def check(path: Path) -> Check:
    """Read ``path`` and compare it with its checksum record."""
    if not path.is_file():
        return Check(path, "missing")
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
        size, expected = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return Check(path, "no checksum record")
    except (OSError, ValueError, KeyError, TypeError):
        return Check(path, "unreadable checksum record")
    try:
        if path.stat().st_size != size:
            return Check(path, "size differs")
        data = path.read_bytes()
    except OSError:
        return Check(path, "unreadable")
    if hashlib.sha256(data).hexdigest() != expected:
        return Check(path, "checksum differs")
    return Check(path, "ok", data)


def discard(path: Path) -> None:
    """Remove a checked cache file and its record (either may be missing)."""
    for p in (path, sidecar(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def read_checked(path: Path, what: str) -> bytes | None:
    """The bytes of ``path`` if it is complete and intact; None if absent or damaged (then it is removed)."""
    result = check(path)
    if result.status == "ok":
        return result.data
    if result.damaged:
        log.warning("damaged %s in the cache (%s): %s; removed, it is rebuilt", what, result.status, path)
        try:
            discard(path)
        except OSError:
            pass  # a read-only cache: the entry is still never used
    return None
