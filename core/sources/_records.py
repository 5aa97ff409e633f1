"""What a pull produces (``Fetched``, ``FileRecord``) and which files an entry pins.

Shared by the resolvers (``_fetch`` for file://, ``_hf``, ``_pkg``) so that
none of them imports another: ``_fetch`` dispatches to the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftzoo.registry import ModelEntry, Source


@dataclass(frozen=True)
class FileRecord:
    """One verified file of a pull."""

    name: str  # path relative to the pulled directory (or the file name for a single file)
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Fetched:
    """What a pull produced: the path handed to adapters and the exact files behind it."""

    model_id: str
    source: str
    path: Path
    revision: str | None  # hf: commit hash; pkg: version; file: None
    files: tuple[FileRecord, ...]
    owned: tuple[Path, ...] = field(default=())  # files stored by Graftzoo (removable by 'cache rm')

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``models/ID.json``."""
        return {
            "id": self.model_id,
            "source": self.source,
            "path": str(self.path),
            "revision": self.revision,
            "files": {f.name: {"sha256": f.sha256, "size": f.size, "path": str(f.path)} for f in self.files},
            "owned": [str(p) for p in self.owned],
            "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


Resolver = Callable[[ModelEntry, Source, str | None, bool], Fetched]


def pinned_files(entry: ModelEntry, src: Source) -> dict[str, str | None]:
    """Relative file name -> pinned sha256 (None: verify against the hub's own hash)."""
    if src.is_directory:
        return dict(entry.files)
    return {src.path.rsplit("/", 1)[-1]: entry.sha256}
