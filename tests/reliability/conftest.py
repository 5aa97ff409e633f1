"""Fixtures for the reliability tests: the tiny CNN plugin of the engine tests, small file systems."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.train.conftest import config, tiny_plugin, tiny_weights_dir

__all__ = ["config", "tiny_plugin", "tiny_weights_dir"]


def _mount(target: Path, options: str) -> bool:
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                          timeout=30)
    return done.returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """A factory for size-limited (or read-only) tmpfs mounts; skips where mounting is not allowed."""
    mounted: list[Path] = []

    def make(name: str, size: str = "2m", read_only: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        if not _mount(target, f"size={size}{',ro' if read_only else ''}"):
            pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the injected-error tests cover this case")
        mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                continue
