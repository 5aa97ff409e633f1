"""Find what interrupted writers left behind, and check every checksummed cache file.

``leftovers`` lists temporary files and directories of writers that are gone
(``graftzoo.storage.atomic`` names them with their pid; names from older
versions are recognised by age), checksum records without their file and
files without their record, and hash memos of files that no longer exist.
``graft cache gc`` removes them; ``graft cache verify`` re-hashes every
checked file (``verify_checked``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from graftzoo.storage import atomic, checked

CHECKED_DIRS = ("converted", "features")  # caches whose files carry a checksum record
# Temporary names used before the single helper existed: removed once they are clearly abandoned.
_LEGACY = re.compile(r"^(\..+\.part|\..+\.tmp|tmp[A-Za-z0-9_]+\.tmp)$")
LEGACY_AGE_S = 3600.0
ORPHAN_AGE_S = 60.0  # a file waits this long for its checksum record (its writer renames that second)


@dataclass(frozen=True)
class Leftover:
    """A file or directory that ``graft cache gc`` removes, and why."""

    path: Path
    reason: str


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def _temps(root: Path) -> Iterator[Leftover]:
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            pid = atomic.temp_owner(path)
            if pid is not None:
                if not alive(pid):
                    yield Leftover(path, f"temporary file of a writer that stopped (pid {pid})")
            elif _LEGACY.match(name) and _age(path) > LEGACY_AGE_S:
                yield Leftover(path, "temporary file of an interrupted write")
        dirs[:] = [d for d in dirs if atomic.temp_owner(Path(folder) / d) is None]


def _orphans(home: Path) -> Iterator[Leftover]:
    for name in CHECKED_DIRS:
        folder = home / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.name.endswith(checked.SIDECAR):
                data = path.with_name(path.name[: -len(checked.SIDECAR)])
                if not data.exists():
                    yield Leftover(path, "checksum record of a file that is gone")
            elif path.suffix == ".safetensors" and not checked.sidecar(path).exists() and _age(path) > ORPHAN_AGE_S:
                yield Leftover(path, "cache file without its checksum record (its writer was interrupted)")
    memos = home / "hashes"
    for memo in sorted(memos.glob("*.json")) if memos.is_dir() else []:
        try:
            target = Path(json.loads(memo.read_text(encoding="utf-8"))["path"])
        except (OSError, ValueError, KeyError, TypeError):
            yield Leftover(memo, "unreadable hash memo")
            continue
        if not target.exists():
            yield Leftover(memo, f"hash memo of {target}, which is gone")


def leftovers(roots: list[Path], home: Path) -> list[Leftover]:
    """Everything ``graft cache gc`` would remove under the cache roots."""
    found: list[Leftover] = []
    for root in roots:
        if root.is_dir():
            found.extend(_temps(root))
    if home.is_dir():
        found.extend(_orphans(home))
    return found


def remove(item: Leftover) -> None:
    """Delete one leftover (gone already is fine)."""
    atomic._discard(item.path)


def verify_checked(home: Path) -> list[checked.Check]:
    """Re-hash every checked cache file; return the damaged ones (not yet removed)."""
    bad = []
    for name in CHECKED_DIRS:
        folder = home / name
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.name.startswith(".") or path.name.endswith(checked.SIDECAR) or not path.is_file():
                continue
            result = checked.check(path)
            if result.damaged:
                bad.append(checked.Check(path, result.status))
    return bad


def count_checked(home: Path) -> int:
    """How many checked cache files there are."""
    return sum(1 for name in CHECKED_DIRS if (home / name).is_dir() for p in (home / name).iterdir()
               if p.is_file() and not p.name.startswith(".") and not p.name.endswith(checked.SIDECAR))
