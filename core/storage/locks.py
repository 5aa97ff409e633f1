"""Inter-process locks: one that waits (shared cache entries), one that refuses at once (run directories).

Both are ``flock`` locks, which the kernel drops when their process dies,
however it dies: the lock of a killed process is simply taken over.

- ``waiting(name)``: ``GRAFTZOO_HOME/locks/NAME.lock``; a second process that
  needs the same download, conversion or features waits, then reuses them.
- ``exclusive(path)``: ``.<name>.graft-lock`` beside a run directory; a second
  writer refuses at once, naming the holder (pid, command, start time), which
  the lock file records.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graftzoo.errors import SourceError, TrainingError
from graftzoo.home import graftzoo_home
from graftzoo.storage import atomic

LOCK_SUFFIX = ".graft-lock"


@contextmanager
def waiting(name: str, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``GRAFTZOO_HOME/locks/NAME.lock``, waiting up to ``timeout`` seconds for another holder."""
    from filelock import FileLock, Timeout

    path = graftzoo_home() / "locks" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.lock"
    held = FileLock(str(path), timeout=timeout)
    try:
        with atomic.translated(path, "a lock file"):  # a read-only or full home fails here, clearly
            path.parent.mkdir(parents=True, exist_ok=True)
            held.acquire()
    except Timeout:
        raise SourceError(f"waited {timeout:.0f} s for the lock {path}: another process is still making the same "
                          "file; wait for it, or remove the lock file if no graft process is alive") from None
    try:
        yield
    finally:
        held.release()


def lock_path(path: Path) -> Path:
    """The lock file guarding ``path``."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode("utf-8"))
        return f"pid {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


_held: set[Path] = set()  # lock files this process holds (flock conflicts even within one process)
_fds: set[int] = set()  # their descriptors


def _close_in_child() -> None:
    """In a forked child (a DataLoader worker), close the inherited run-lock descriptors.

    A flock belongs to the open file, which a fork shares: without this, the
    workers of a process killed with SIGKILL would keep its run locked until
    they notice their parent is gone (seconds), and ``--resume`` right after
    the kill would be refused. The parent's own descriptor keeps the lock.
    """
    for fd in list(_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _fds.clear()
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _acquire(path: Path, what: str) -> int:
    lock = lock_path(path)
    while True:
        with atomic.translated(lock, f"the lock of {what}"):
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise TrainingError(f"{path} is being written by {holder}; wait for it to finish (or stop it), or "
                                "choose another --out") from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def holder(path: Path) -> str | None:
    """Who else holds the lock of ``path`` right now, or None when nobody (or this process) does."""
    if lock_path(path) in _held:
        return None
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # closing drops a shared lock we may have taken
    return None


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lock of ``path`` for the block; a ``TrainingError`` naming the holder if it is taken."""
    fd = _acquire(path, what)
    record = {"pid": os.getpid(), "command": " ".join(os.path.basename(a) if i == 0 else a
                                                      for i, a in enumerate(sys.argv))[:300],
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _held.add(lock_path(path))
    _fds.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        yield
    finally:
        _held.discard(lock_path(path))
        _fds.discard(fd)
        try:
            os.unlink(lock_path(path))
        except OSError:
            pass
        os.close(fd)
