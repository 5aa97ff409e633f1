"""Cache files that carry their own checksum: converted weights and cached features.

``save_checked(path, data)`` writes ``path`` and, beside it, ``path.sha256``
(``{"sha256": ..., "size": ...}``), both atomically. ``read_checked`` compares
size and sha256 of what it reads with that record on every read (the bytes
are read anyway, so the hash is the only extra cost); an entry that is
incomplete (no record: the writer was killed between the two renames) or
damaged (bit rot, truncation, an edit) is removed and reported as absent, so
the caller rebuilds it and never uses it. A file without a record that is
younger than ``WRITER_GRACE_S`` is only reported absent, not removed: another
process may be between writing it and writing its record.

Large entries (features of a big data set, converted weights) go through
``save_checked_with`` and ``load_checked``: the file is written by a library's
own save function and hashed from disk, and read back hashed in blocks and
then memory-mapped by the loader, so neither side holds a second copy of the
bytes in the process's memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from graftzoo.storage import atomic

SIDECAR = ".sha256"
log = logging.getLogger("graftzoo.cache")
T = TypeVar("T")


def sidecar(path: Path) -> Path:
    """The checksum record of a checked cache file."""
    return path.with_name(path.name + SIDECAR)


def save_checked(path: Path, data: bytes, what: str) -> str:
    """Write ``data`` to ``path`` with its checksum record; return the sha256."""
    digest = hashlib.sha256(data).hexdigest()
    atomic.write_bytes(path, data, what)
    atomic.write_json(sidecar(path), {"sha256": digest, "size": len(data)}, f"{what} (checksum)")
    return digest


def save_checked_with(path: Path, writer: Callable[[Path], object], what: str) -> str:
    """Like ``save_checked`` for a file that ``writer(tmp)`` writes itself; hashed from disk, not from memory."""
    record: dict[str, object] = {}

    def write(tmp: Path) -> None:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
            record.update(sha256=_hash_open(fh), size=os.fstat(fh.fileno()).st_size)

    atomic.write_with(path, write, what)
    atomic.write_json(sidecar(path), record, f"{what} (checksum)")
    return str(record["sha256"])


def _hash_open(fh: io.BufferedIOBase) -> str:
    """The sha256 of an open file from its start, read in blocks (the standard library's loop)."""
    fh.seek(0)
    return hashlib.file_digest(fh, "sha256").hexdigest()


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


def _record(path: Path) -> tuple[int, str] | Check:
    """The (size, sha256) of ``path``'s checksum record, or the Check that says why there is none."""
    if not path.is_file():
        return Check(path, "missing")
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
        return int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return Check(path, "no checksum record")
    except (OSError, ValueError, KeyError, TypeError):
        return Check(path, "unreadable checksum record")


def check(path: Path) -> Check:
    """Read ``path`` and compare it with its checksum record."""
    return _verify(path, streamed=False)


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
    _drop_damaged(result, what)
    return None


def load_checked(path: Path, what: str, load: Callable[[Path], T | None]) -> T | None:
    """``load(path)`` if ``path`` is complete and intact; None if absent or damaged (then it is removed).

    The file is hashed in blocks from an open descriptor and ``load`` (which
    may memory-map it) must find that same, unchanged file at ``path``: a
    file replaced or edited in between is not used (None, left in place).
    ``load`` returns None for an intact file it cannot read: that entry is
    damaged and removed. Nothing beyond what ``load`` keeps is held in memory.
    """
    result = _verify(path, streamed=True)
    if result.status != "ok":
        _drop_damaged(result, what)
        return None
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            loaded = load(path)
            after = os.stat(path)
    except OSError:
        return None  # removed or replaced while it was read
    same = (before.st_ino, before.st_dev, before.st_size, before.st_mtime_ns)
    if (after.st_ino, after.st_dev, after.st_size, after.st_mtime_ns) != same or result.data != _stamp(before):
        return None
    if loaded is None:
        _drop_damaged(Check(path, "intact checksum, unreadable content"), what)
    return loaded


def open_checked(path: Path, what: str) -> io.BufferedReader | None:
    """``path`` opened for reading once it is found complete and intact (hashed in blocks from this very
    descriptor, so a file replaced afterwards does not matter: reads go to the verified one); None if absent
    or damaged (then it is removed). For entries read piece by piece rather than loaded whole."""
    record = _record(path)
    if isinstance(record, Check):
        _drop_damaged(record, what)
        return None
    try:
        fh = open(path, "rb")  # handed to the caller, who keeps it open while reading
    except OSError:
        return None
    status = _verify_open(fh, *record)
    if status == "ok":
        return fh
    fh.close()
    _drop_damaged(Check(path, status), what)
    return None


def _verify_open(fh: io.BufferedReader, size: int, expected: str) -> str:
    """The status of an open file against its record's size and sha256."""
    try:
        if os.fstat(fh.fileno()).st_size != size:
            return "size differs"
        return "ok" if _hash_open(fh) == expected else "checksum differs"
    except OSError:
        return "unreadable"


def _stamp(st: os.stat_result) -> bytes:
    return f"{st.st_ino}:{st.st_dev}:{st.st_size}:{st.st_mtime_ns}".encode()


def _verify(path: Path, streamed: bool) -> Check:
    """``path`` against its record; ``streamed``: hashed in blocks, ``data`` the identity stamp, not the bytes."""
    record = _record(path)
    if isinstance(record, Check):
        return record
    size, expected = record
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size != size:
                return Check(path, "size differs")
            if streamed:
                digest, data = _hash_open(fh), _stamp(st)
            else:
                data = fh.read()
                digest = hashlib.sha256(data).hexdigest()
    except OSError:
        return Check(path, "unreadable")
    if digest != expected:
        return Check(path, "checksum differs")
    return Check(path, "ok", data)


#: A file this young without its record may be a writer between its two renames: absent, but not removed.
WRITER_GRACE_S = 120.0


def _drop_damaged(result: Check, what: str) -> None:
    import time

    path = result.path
    if result.status == "no checksum record":
        try:
            if time.time() - path.stat().st_mtime < WRITER_GRACE_S:
                return  # another process may be about to write the record; rebuilding replaces it atomically
        except OSError:
            return
    if result.damaged:
        log.warning("damaged %s in the cache (%s): %s; removed, it is rebuilt", what, result.status, path)
        try:
            discard(path)
        except OSError:
            pass  # a read-only cache: the entry is still never used
