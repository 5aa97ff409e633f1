"""The one way Graftzoo writes a file or a directory: build it under a temporary name, then rename.

Every temporary name has the form ``.<target name>.<pid>-<random>.graft-tmp``
in the target's own directory (same file system, so the rename is atomic). A
reader therefore sees the previous complete version or the new complete one,
never a half-written file, and ``graft cache gc`` (``graftzoo.storage.sweep``)
can tell a temporary file of a killed writer (its pid is gone) from one that
is still being written.

A write that fails for want of room or permission (ENOSPC, EDQUOT, EROFS,
EACCES, EPERM) is turned into one ``StorageError`` that names the file and says
what to free or where to point ``GRAFTZOO_HOME``; the previous version of the
target is left as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graftzoo.errors import StorageError
from graftzoo.home import graftzoo_home

TEMP_SUFFIX = ".graft-tmp"
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
# Libraries that write files themselves (safetensors in Rust) report the OS error in their message only.
_MESSAGES = {"No space left on device": errno.ENOSPC, "os error 28": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
             "os error 122": errno.EDQUOT, "Read-only file system": errno.EROFS, "os error 30": errno.EROFS}


def temp_beside(dest: Path) -> Path:
    """A unique temporary name next to ``dest`` that carries the writer's pid (see the module docstring)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def temp_owner(path: Path) -> int | None:
    """The pid of the process writing the temporary file ``path``, or None when it is not one of ours."""
    name = path.name
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    tag = name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
    pid, _, rand = tag.partition("-")
    return int(pid) if pid.isdigit() and rand else None


def _under_home(path: Path) -> bool:
    try:
        path.resolve().relative_to(graftzoo_home().resolve())
    except (ValueError, OSError):
        return False
    return True


def _free(path: Path) -> str:
    for folder in (path, *path.parents):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        return f"{free / 2**20:.1f} MiB free"
    return "free space unknown"


def disk_error(exc: BaseException, path: Path, what: str) -> StorageError | None:
    """The ``StorageError`` for a write of ``path`` that failed with ``exc``, or None if it is not a disk error."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        code = next((c for text, c in _MESSAGES.items() if text in str(exc)), None)
    if code not in FULL + READ_ONLY:
        return None
    home = graftzoo_home()
    in_home = _under_home(path)
    if code in FULL:
        where = (f"free space there ('graft cache gc' removes leftovers, 'graft cache rm ID' whole models) or "
                 f"point GRAFTZOO_HOME (now {home}) at a disk with room" if in_home
                 else "free space there or write to another disk (e.g. another --out)")
        return StorageError(f"no space left on the disk of {path} ({_free(path.parent)}) while writing {what}; "
                            "nothing half-written was kept (a previous version, if any, is intact). "
                            f"{where[0].upper()}{where[1:]}")
    reason = "the file system is read-only" if code == errno.EROFS else "permission denied"
    where = (f"point GRAFTZOO_HOME (now {home}) at a writable directory" if in_home
             else "choose a writable directory (e.g. another --out)")
    return StorageError(f"cannot write {what} to {path}: {reason}; nothing was changed. {where[0].upper()}{where[1:]}")


@contextmanager
def translated(path: Path, what: str) -> Iterator[None]:
    """Run a block that writes ``path``: disk errors become one ``StorageError`` naming it."""
    try:
        yield
    except Exception as exc:
        err = disk_error(exc, path, what)
        if err is None:
            raise
        raise err from None


def _discard(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_path(dest: Path, what: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; after the block it replaces ``dest`` in one rename.

    The block writes (a file, a symlink) at the yielded path. If it raises, or
    the rename fails, the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    label = what or dest.name
    with translated(dest, label):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(dest)
        try:
            yield tmp
            os.replace(tmp, dest)
        finally:
            if tmp.exists() or tmp.is_symlink():
                _discard(tmp)


def write_bytes(dest: Path, data: bytes | bytearray | memoryview, what: str | None = None) -> None:
    """Write ``data`` to ``dest`` atomically (flushed to disk before the rename)."""
    with atomic_path(dest, what) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(dest: Path, text: str, what: str | None = None) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    write_bytes(dest, text.encode("utf-8"), what)


def write_json(dest: Path, data: Any, what: str | None = None, *, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> None:
    """Write ``data`` as indented JSON (with a final newline) to ``dest`` atomically."""
    write_text(dest, json.dumps(data, indent=2, sort_keys=sort_keys, default=default) + "\n", what)


def write_with(dest: Path, writer: Callable[[Path], object], what: str | None = None) -> None:
    """Let ``writer(path)`` (a library's save function) write a temporary file, then rename it to ``dest``."""
    with atomic_path(dest, what) as tmp:
        writer(tmp)


@contextmanager
def atomic_dir(dest: Path, what: str | None = None, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory; after the block it becomes ``dest`` in one rename.

    With ``replace`` an existing ``dest`` is swapped out (renamed aside, then
    deleted), so at every moment ``dest`` is either the old complete directory
    or the new one. Without it an existing non-empty ``dest`` makes the
    rename fail and the new directory is discarded.
    """
    dest = Path(dest)
    label = what or str(dest)
    with translated(dest, label):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(dest)
        tmp.mkdir()
        old: Path | None = None
        try:
            yield tmp
            if replace and (dest.exists() or dest.is_symlink()):
                old = temp_beside(dest)
                os.replace(dest, old)
            os.replace(tmp, dest)
        finally:
            if old is not None and not dest.exists():  # the swap failed half-way: put the old one back
                os.replace(old, dest)
            for leftover in (tmp, old):
                if leftover is not None and (leftover.exists() or leftover.is_symlink()):
                    _discard(leftover)
