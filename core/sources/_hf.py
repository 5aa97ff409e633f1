"""``hf://org/repo@revision[/path]``: files from a Hugging Face hub, into the Hugging Face cache.

Files are written into the hub cache in huggingface_hub's own layout
(``blobs/ETAG``, ``snapshots/COMMIT/PATH`` symlinks, ``refs/REVISION``), so
``from_pretrained`` and ``snapshot_download`` find them and nothing is stored
twice. Unlike a plain ``hf_hub_download`` the blob is verified before it is
renamed into place: against the registry's sha256, else the hub's LFS sha256
(the ETag of LFS files), else the git blob id of small files. ``HF_ENDPOINT``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE`` are read on every call.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from graftzoo.errors import ChecksumError, SourceError
from graftzoo.registry import ModelEntry, Source
from graftzoo.sources import _cache
from graftzoo.sources._progress import Advance, transfers
from graftzoo.sources._records import Fetched, FileRecord, pinned_files
from graftzoo.storage import atomic

ATTEMPTS = 4  # per request; each retry waits BACKOFF_S * 2**n
WORKERS = 8  # files of one snapshot downloaded in parallel, as snapshot_download does
BACKOFF_S = 0.2
TIMEOUT_S = 30.0
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
T = TypeVar("T")


def endpoint() -> str:
    """The hub endpoint: ``HF_ENDPOINT`` or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for cache-only resolution."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def token() -> str | None:
    """``HF_TOKEN``, else the token saved by ``hf auth login``."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def storage(repo: str) -> Path:
    """The hub-cache folder of a model repository."""
    return _cache.hf_cache() / ("models--" + repo.replace("/", "--"))


class _Retry(Exception):
    """A transient failure worth another attempt."""


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def translate(exc: BaseException, what: str) -> SourceError:
    """A hub error as a ``SourceError`` that says what to do."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    code = _status(exc)
    if isinstance(exc, GatedRepoError):
        return SourceError(f"{what}: the repository is gated on {endpoint()}; accept its terms and set HF_TOKEN")
    if isinstance(exc, RevisionNotFoundError):
        return SourceError(f"{what}: revision not found on {endpoint()}; check the @revision in the source")
    if isinstance(exc, EntryNotFoundError):
        return SourceError(f"{what}: file not found on {endpoint()}; check the path in the source")
    if isinstance(exc, RepositoryNotFoundError):
        return SourceError(f"{what}: repository not found on {endpoint()} (or private: set HF_TOKEN); check the "
                           "org/repo in the source")
    if code in (401, 403):
        return SourceError(f"{what}: access denied by {endpoint()} (HTTP {code}); set HF_TOKEN to a token that "
                           "can read this repository")
    if code == 404:
        return SourceError(f"{what}: not found on {endpoint()} (HTTP 404); check the repository, revision and path")
    if code is not None:
        return SourceError(f"{what}: {endpoint()} answered HTTP {code} after {ATTEMPTS} attempts; retry later")
    return SourceError(f"{what}: cannot reach {endpoint()} ({type(exc).__name__}: {exc}); check the network or "
                       "HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only what is cached")


def retrying(call: Callable[[], T], what: str) -> T:
    """Run ``call`` with bounded retries on connection errors, 429 and 5xx; translate the last error."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(ATTEMPTS):
        try:
            return call()
        except (httpx2.TransportError, HfHubHTTPError, _Retry) as exc:
            code = _status(exc)
            transient = code is None or code == 429 or code >= 500
            if not transient or attempt == ATTEMPTS - 1:
                raise translate(exc, what) from None
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _stream(url: str, headers: dict[str, str], size: int | None, what: str,
            advance: Callable[[int], None]) -> Iterator[bytes]:
    """GET ``url`` in chunks, resuming with Range after a dropped connection (bounded)."""
    import httpx2
    from huggingface_hub import get_session, hf_raise_for_status

    done = 0
    failures = 0
    while True:
        request_headers = dict(headers)
        if done:
            request_headers["Range"] = f"bytes={done}-"
        try:
            with get_session().stream("GET", url, headers=request_headers, timeout=TIMEOUT_S,
                                      follow_redirects=True) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retry(f"HTTP {response.status_code}")
                hf_raise_for_status(response)
                skip = done if response.status_code == 200 else 0  # the server ignored Range: drop what we have
                for chunk in response.iter_bytes(_cache.CHUNK):
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if chunk:
                        done += len(chunk)
                        advance(len(chunk))
                        yield chunk
            if size is None or done >= size:
                return
            raise _Retry(f"connection closed after {done} of {size} bytes")
        except (httpx2.TransportError, _Retry) as exc:
            failures += 1
            if failures >= ATTEMPTS:
                raise SourceError(f"{what}: download failed {ATTEMPTS} times ({exc}); nothing was kept, "
                                  "retry the pull") from None
            time.sleep(BACKOFF_S * 2 ** (failures - 1))
        except Exception as exc:
            if _status(exc) is not None:
                raise translate(exc, what) from None
            raise


def _link(pointer: Path, blob: Path) -> None:
    """Point a snapshot entry at its blob with a relative symlink, replacing atomically."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(blob, pointer.parent)
    _cache.remove_stale_parts(pointer)
    if pointer.is_symlink() and os.readlink(pointer) == target:
        return
    with atomic.atomic_path(pointer, f"the snapshot link {pointer.name}") as tmp:
        os.symlink(target, tmp)


def _write_ref(folder: Path, revision: str, commit: str) -> None:
    if revision != commit:
        ref = folder / "refs" / revision
        _cache.safe_relpath(revision, "revision")
        ref.parent.mkdir(parents=True, exist_ok=True)
        _cache.remove_stale_parts(ref)
        if not ref.is_file() or ref.read_text() != commit:
            atomic.write_text(ref, commit, f"the ref {revision}")


def _verify_blob(blob: Path, pin: str | None, where: str, name: str) -> str:
    """Check a cached blob against the pin, else against its own name (LFS sha256 or git blob id)."""
    expected = pin or blob.name
    if not (_HEX64.match(expected) or _HEX40.match(expected)):
        raise ChecksumError(f"{where}: cannot verify {name}: no pinned sha256 and the hub gave no usable hash")
    digest = _cache.verify_file(blob, expected, where)
    return digest if len(expected) == 64 else _cache.cached_sha256(blob)


def _download(repo: str, revision: str, name: str, pin: str | None, *, force: bool, where: str,
              progress: Callable[[str, int | None], Advance],
              known: tuple[str, int] | None = None) -> tuple[FileRecord, str]:
    """One file into the hub cache, verified before it becomes visible; returns (record, commit).

    ``known`` is (etag, size) from a tree listing at the commit ``revision``:
    the per-file HEAD request is then skipped, as snapshot_download does.
    """
    from filelock import FileLock
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils._headers import build_hf_headers

    _cache.safe_relpath(name, where)
    what = f"{where}: hf://{repo}@{revision}/{name}"
    url = hf_hub_url(repo, name, revision=revision, endpoint=endpoint())
    tok = token()
    etag: str | None
    commit: str | None
    size: int | None
    if known is not None and _HEX40.match(revision):
        etag, commit, size, location = known[0], revision, known[1], url
    else:
        meta = retrying(lambda: get_hf_file_metadata(url, token=tok, endpoint=endpoint()), what)
        etag, commit, size, location = meta.etag, meta.commit_hash, meta.size, meta.location
    if not etag or not commit or "/" in etag or etag in (".", ".."):
        raise SourceError(f"{what}: the hub gave no usable ETag/commit for this file; it is not a hub endpoint?")
    hub_sha = etag if _HEX64.match(etag) else None
    git_sha1 = etag if _HEX40.match(etag) else None
    if pin and hub_sha and pin != hub_sha:
        raise ChecksumError(f"{what}: the registry pins sha256 {pin} but the hub serves {hub_sha} at revision "
                            f"{commit}; nothing was downloaded. Fix the entry's sha256 or its revision")
    folder = storage(repo)
    blob = folder / "blobs" / etag
    pointer = folder / "snapshots" / commit / name
    _write_ref(folder, revision, commit)
    lock_path = _cache.hf_cache() / ".locks" / folder.name / f"{etag}.lock"  # huggingface_hub's own lock
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=600):
        if blob.is_file() and not force:
            try:
                digest = _verify_blob(blob, pin, where, name)
                _link(pointer, blob)
                return FileRecord(name, pointer, digest, blob.stat().st_size), commit
            except ChecksumError:
                blob.unlink()  # corrupt cache entry: replace it below
                _cache.forget_sha256(blob)
        _cache.remove_stale_parts(blob)
        headers = build_hf_headers(token=tok)
        advance = progress(name, size)
        digest = _cache.write_verified(blob, _stream(location, headers, size, what, advance),
                                       pin or hub_sha, what, name, expected_size=size,
                                       expected_git_sha1=None if pin else git_sha1)
        _link(pointer, blob)
    return FileRecord(name, pointer, digest, size or blob.stat().st_size), commit


def _list_files(repo: str, revision: str, folder: str, where: str) -> dict[str, tuple[str | None, str, int]]:
    """Every file of a snapshot (or one folder in it): name -> (LFS sha256, etag, size), from the tree listing."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint(), token=token())
    what = f"{where}: hf://{repo}@{revision}/{folder}"

    def listing() -> list[Any]:
        return list(api.list_repo_tree(repo, path_in_repo=folder.rstrip("/") or None, revision=revision,
                                       recursive=True))

    out: dict[str, tuple[str | None, str, int]] = {}
    for item in retrying(listing, what):
        if getattr(item, "blob_id", None) is None:
            continue  # a folder
        path = str(item.path)
        _cache.safe_relpath(path, where)
        lfs = getattr(item, "lfs", None)
        name = path[len(folder):] if folder and path.startswith(folder) else path
        sha = str(lfs.sha256) if lfs else None
        out[name] = (sha, sha or str(item.blob_id), int(item.size))
    if not out:
        raise SourceError(f"{what}: the hub lists no files there; check the path and revision")
    return out


def _offline_fetch(entry: ModelEntry, src: Source, revision: str, where: str) -> Fetched:
    folder = storage(src.repo)
    commit = revision if _HEX40.match(revision) else None
    ref = folder / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    root = folder / "snapshots" / (commit or "?") / src.path
    if commit is None or not root.exists():
        raise SourceError(f"{where}: HF_HUB_OFFLINE is set and hf://{src.repo}@{revision} is not in the cache "
                          f"({_cache.hf_cache()}); pull it once while online, or unset HF_HUB_OFFLINE")
    pins: dict[str, str | None] = dict(pinned_files(entry, src))
    if revision != src.revision:
        pins = {name: None for name in entry.files} if src.is_directory else {}
    if src.is_directory and not pins:
        pins = {str(p.relative_to(root)): None for p in sorted(root.rglob("*")) if p.is_file()}
    elif not pins:
        pins = {src.path.rsplit("/", 1)[-1]: None}
    records = []
    for name, pin in pins.items():
        pointer = root / name if src.is_directory else root
        if not pointer.exists():
            raise SourceError(f"{where}: HF_HUB_OFFLINE is set and {name} of hf://{src.repo}@{revision} is not "
                              "cached; pull it once while online")
        digest = _verify_blob(pointer.resolve(), pin, where, name)
        records.append(FileRecord(name, pointer, digest, pointer.stat().st_size))
    return Fetched(entry.id, entry.source, root, commit, tuple(records))


def fetch_hf(entry: ModelEntry, src: Source, revision: str | None, force: bool) -> Fetched:
    """Resolve an ``hf://`` source to verified files in the Hugging Face cache."""
    where = f"{entry.origin or 'registry'}: entry {entry.id!r}"
    rev = revision or src.revision or "main"
    if offline():
        return _offline_fetch(entry, src, rev, where)
    # A --revision other than the pinned one opts out of the registry's pins (the hub's hashes still apply).
    pins: dict[str, str | None] = dict(pinned_files(entry, src))
    if rev != src.revision:
        pins = {name: None for name in entry.files} if src.is_directory else {}
    folder_prefix = src.path if src.is_directory else src.path.rsplit("/", 1)[0] + "/" if "/" in src.path else ""
    known: dict[str, tuple[str, int]] = {}
    if src.is_directory and not pins:
        listing = _list_files(src.repo, rev, src.path, where)
        pins = {name: info[0] for name, info in listing.items()}
        known = {name: (info[1], info[2]) for name, info in listing.items()}
    elif not pins:
        pins = {src.path.rsplit("/", 1)[-1]: None}
    # The smallest file goes first: its HEAD fixes the commit, so the others (fetched in parallel, without a
    # HEAD each when the listing gave their hashes) cannot mix two commits of a moving branch.
    names = sorted(pins, key=lambda n: known.get(n, ("", 0))[1])
    with transfers() as progress:
        first, commit = _download(src.repo, rev, folder_prefix + names[0], pins[names[0]], force=force, where=where,
                                  progress=progress)
        results = {names[0]: first}
        if len(names) > 1:
            pool = ThreadPoolExecutor(max_workers=min(WORKERS, len(names) - 1), thread_name_prefix="graft-pull")
            try:
                futures = {name: pool.submit(_download, src.repo, commit, folder_prefix + name, pins[name],
                                             force=force, where=where, progress=progress, known=known.get(name))
                           for name in names[1:]}
                for name, future in futures.items():
                    results[name] = future.result()[0]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # on error: no new downloads, running ones finish
    records = [FileRecord(name, results[name].path, results[name].sha256, results[name].size) for name in names]
    if commit != rev:
        _write_ref(storage(src.repo), rev, commit)
    root = storage(src.repo) / "snapshots" / commit / src.path
    owned = tuple(r.path for r in records) + tuple(r.path.resolve() for r in records)
    return Fetched(entry.id, entry.source, root, commit, tuple(records), owned)
