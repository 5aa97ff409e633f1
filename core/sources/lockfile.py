"""Lock files: the exact files, revisions and hashes of a set of pulls, and reproducing them.

``graft pull ID --lock graft.lock`` records what a pull produced;
``graft pull --locked graft.lock`` pulls the same revisions again and fails
unless every file has the recorded sha256. The format is JSON::

    {"version": 1, "models": {"ID": {"source": ..., "revision": ...,
                                     "files": {"NAME": {"sha256": ..., "size": ...}}}}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graftzoo.errors import ChecksumError, RegistryError, SourceError
from graftzoo.registry import Registry
from graftzoo.sources import _cache
from graftzoo.sources._fetch import Fetched, pull

VERSION = 1


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    """The models recorded in a lock file, by id; ``SourceError`` when it is unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{path}: no such lock file; create it with 'graft pull ID --lock {path}'") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read lock file ({exc}); regenerate it with 'graft pull ID --lock'") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(models, dict):
        raise SourceError(f"{path}: not a graft lock file (version {VERSION} with a 'models' table); "
                          "regenerate it with 'graft pull ID --lock'")
    for model_id, record in models.items():
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict) or not all(isinstance(v, dict) and "sha256" in v for v in files.values()):
            raise SourceError(f"{path}: model {model_id!r} has no valid 'files' table; regenerate the lock file")
    return models


def record_lock(path: Path, fetched: Iterable[Fetched]) -> None:
    """Add (or replace) the given pulls in a lock file, keeping the other models it records."""
    path = Path(path)
    models = read_lock(path) if path.exists() else {}
    for item in fetched:
        models[item.model_id] = {
            "source": item.source,
            "revision": item.revision,
            "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in item.files},
        }
    _cache.write_json(path, {"version": VERSION, "models": dict(sorted(models.items()))})


def pull_locked(path: Path, registry: Registry, ids: Iterable[str] = ()) -> list[Fetched]:
    """Pull every model of a lock file (or only ``ids``) at its recorded revision and hashes."""
    models = read_lock(path)
    wanted = list(ids) or list(models)
    out = []
    for model_id in wanted:
        if model_id not in models:
            raise SourceError(f"{path}: model {model_id!r} is not in the lock file; add it with "
                              f"'graft pull {model_id} --lock {path}'")
        record = models[model_id]
        try:
            entry = registry.get(model_id)
        except RegistryError as exc:
            raise RegistryError(f"{path}: model {model_id!r} of the lock file: {exc}") from None
        if entry.source != record.get("source"):
            raise SourceError(f"{path}: model {model_id!r} was locked from {record.get('source')} but the registry "
                              f"now says {entry.source}; update the lock file or the registry")
        revision = record.get("revision") if entry.parsed_source.scheme == "hf" else None
        fetched = pull(entry, revision=revision)
        got = {f.name: f.sha256 for f in fetched.files}
        locked = {name: str(f["sha256"]) for name, f in record["files"].items()}
        if got != locked:
            diff = sorted(n for n in set(got) | set(locked) if got.get(n) != locked.get(n))
            raise ChecksumError(f"{path}: model {model_id!r} does not reproduce the lock file: "
                                f"{', '.join(diff)} differ(s) (locked {[locked.get(n) for n in diff]}, got "
                                f"{[got.get(n) for n in diff]}); the source changed, re-lock deliberately")
        out.append(fetched)
    return out
