"""A pull stopped by Ctrl-C or SIGTERM, or one that runs out of disk, leaves no partial file in the cache."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import BIG, Hub, parts_left, sha
from hub_servers import Fault, FaultProxy

from graftzoo.errors import StorageError


@pytest.fixture
def big_entry(registry_file: Callable[..., Path]) -> str:
    registry_file({"id": "big.test", "modality": "vision", "backbone": "timm", "license": "MIT",
                   "source": "hf://acme/big@main/model.safetensors", "sha256": sha(BIG["model.safetensors"])})
    return "big.test"


def blobs(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("blobs/*") if not p.name.startswith(".")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_pull_leaves_no_partial_file(signum: int, big_entry: str, proxy: FaultProxy, hub: Hub,
                                                   hf_env: Path) -> None:
    proxy.add(Fault("/acme/big/resolve/", "slow"))
    child = subprocess.Popen([sys.executable, "-m", "graftzoo", "pull", big_entry], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not parts_left(hf_env) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    assert parts_left(hf_env), "the pull should have been stopped mid-download"
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode != 0 and "Traceback" not in stderr, stderr
    assert parts_left(hf_env) == [] and blobs(hf_env) == []  # nothing partial, nothing unverified
    proxy.reset()
    again = subprocess.run([sys.executable, "-m", "graftzoo", "pull", big_entry], env=os.environ.copy(),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    (blob,) = blobs(hf_env)
    assert blob.read_bytes() == BIG["model.safetensors"]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "disk"
    target.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], capture_output=True,
            timeout=30).returncode != 0:
        pytest.skip("mounting a tmpfs needs root; injected write errors are tested in tests/reliability")
    yield target
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def test_pull_into_a_full_disk_is_one_clear_error(tiny_disk: Path, proxy: FaultProxy, hub: Hub,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import entry

    from graftzoo.sources import fetch

    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_disk))  # 1 MB; the file is 4 MB
    with pytest.raises(StorageError, match=r"no space left on the disk of .*model.safetensors") as err:
        fetch(entry("hf://acme/big@main/model.safetensors", sha256=sha(BIG["model.safetensors"])))
    assert "nothing half-written was kept" in str(err.value)
    assert parts_left(tiny_disk) == [] and blobs(tiny_disk) == []
