"""Every failure of issue 6: refused or recovered, with a clear error and a clean cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIG, TINY, TINY_V2, Hub, entry, parts_left, sha
from hub_servers import Fault, FaultProxy

from graftzoo.errors import ChecksumError, SourceError
from graftzoo.home import graftzoo_home as home
from graftzoo.sources import fetch, load_state_dict

MODEL = "/acme/tiny/resolve/v1/model.safetensors"


def blobs(hf_cache: Path, repo: str = "acme--tiny") -> list[Path]:
    folder = hf_cache / f"models--{repo}" / "blobs"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_flipped_bytes_are_refused_and_nothing_is_kept(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault(MODEL, "flip"))
    with pytest.raises(ChecksumError, match=r"checksum mismatch for model.safetensors"):
        fetch(entry("hf://acme/tiny@v1/model.safetensors"))  # verified against the hub's LFS sha256
    assert blobs(hf_env) == [] and not parts_left(hf_env, home())


def test_flipped_bytes_of_a_non_lfs_file_fail_its_git_blob_id(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault("/acme/tiny/resolve/v1/config.json", "flip"))
    with pytest.raises(ChecksumError, match=r"git blob id"):
        fetch(entry("hf://acme/tiny@v1/config.json"))
    assert blobs(hf_env) == [] and not parts_left(hf_env)


def test_truncated_download_is_resumed(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault(MODEL, "truncate", times=1))
    path = fetch(entry("hf://acme/tiny@v1/model.safetensors"))
    assert path.read_bytes() == TINY["model.safetensors"]
    assert proxy.requests("GET", MODEL) == 2 and not parts_left(hf_env)


def test_always_truncated_download_gives_up_cleanly(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault(MODEL, "truncate"))
    with pytest.raises(SourceError, match=r"download failed 4 times"):
        fetch(entry("hf://acme/tiny@v1/model.safetensors"))
    assert proxy.requests("GET", MODEL) == 4  # bounded
    assert blobs(hf_env) == [] and not parts_left(hf_env)


def test_wrong_sha256_in_the_registry_fails_before_downloading(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    with pytest.raises(ChecksumError, match=r"registry pins sha256 0{64} but the hub serves"):
        fetch(entry("hf://acme/tiny@v1/model.safetensors", sha256="0" * 64))
    assert proxy.requests("GET", MODEL) == 0 and blobs(hf_env) == []
    # A non-LFS file has no sha256 on the hub: it is downloaded, checked against the pin and dropped.
    with pytest.raises(ChecksumError, match=r"expected 1{64}"):
        fetch(entry("hf://acme/tiny@v1/config.json", sha256="1" * 64))
    assert blobs(hf_env) == [] and not parts_left(hf_env)


def test_server_errors_mid_snapshot_then_retry(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    snapshot = entry("hf://acme/tiny@v1")
    proxy.add(Fault("/acme/tiny/resolve/", "status:500", method="HEAD", times=1))  # transient: retried
    proxy.add(Fault("/sub/extra.safetensors", "status:500"))  # persistent, on the last file's body
    with pytest.raises(SourceError, match=r"HTTP 500|failed 4 times"):
        fetch(snapshot)
    assert not parts_left(hf_env)
    assert sha(TINY["sub/extra.safetensors"]) not in [b.name for b in blobs(hf_env)]
    proxy.reset()
    path = fetch(snapshot)  # the files already verified are reused, the missing one is fetched
    assert (path / "sub/extra.safetensors").read_bytes() == TINY["sub/extra.safetensors"]
    assert proxy.requests("GET", "/model.safetensors") == 0


def test_404_mid_way_is_a_clear_error(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault("/acme/tiny/resolve/v1/config.json", "status:404", method="HEAD"))
    with pytest.raises(SourceError, match=r"not found"):
        fetch(entry("hf://acme/tiny@v1"))
    assert not parts_left(hf_env)


def test_interrupted_download_then_retry(proxy: FaultProxy, hub: Hub, hf_env: Path, tmp_path: Path) -> None:
    """A pull killed mid-download leaves only a temporary file, which the next pull replaces."""
    proxy.add(Fault("/acme/big/resolve/", "slow"))
    code = ("from graftzoo.registry import entry_from_dict as e; from graftzoo.sources import fetch; "
            "fetch(e({'id':'big.t','modality':'vision','backbone':'timm','license':'MIT',"
            "'source':'hf://acme/big@main/model.safetensors'}, 'x'))")
    child = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    deadline = time.monotonic() + 30
    while not parts_left(hf_env) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.kill()
    child.wait(timeout=10)
    assert parts_left(hf_env), "the child should have been killed mid-download"
    assert blobs(hf_env, "acme--big") == []  # nothing half-written is visible
    proxy.reset()
    path = fetch(entry("hf://acme/big@main/model.safetensors", sha256=sha(BIG["model.safetensors"])))
    assert path.read_bytes() == BIG["model.safetensors"]
    assert not parts_left(hf_env)


def test_two_concurrent_pulls_make_one_verified_copy(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    proxy.add(Fault("/acme/big/resolve/", "slow"))
    code = ("from graftzoo.registry import entry_from_dict as e; from graftzoo.sources import fetch; "
            "print(fetch(e({'id':'big.t','modality':'vision','backbone':'timm','license':'MIT',"
            f"'source':'hf://acme/big@main/model.safetensors','sha256':'{sha(BIG['model.safetensors'])}'}}, 'x')))")
    children = [subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy(), stdout=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    outs = [c.communicate(timeout=120)[0].strip() for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert outs[0] == outs[1] and Path(outs[0]).read_bytes() == BIG["model.safetensors"]
    assert proxy.requests("GET", "/acme/big/resolve/") == 1  # the second waited for the lock, then reused it
    assert len(blobs(hf_env, "acme--big")) == 1 and not parts_left(hf_env)


def test_path_traversal_names_from_the_hub_are_refused(proxy: FaultProxy, hub: Hub, hf_env: Path,
                                                       tmp_path: Path) -> None:
    proxy.add(Fault("/api/models/acme/tiny/tree", "tree-traversal"))
    with pytest.raises(SourceError, match=r"refusing file name '../../escaped.safetensors'"):
        fetch(entry("hf://acme/tiny@v1"))
    assert not list(tmp_path.rglob("escaped*")) and not parts_left(hf_env)


def test_path_traversal_in_registry_paths_is_refused() -> None:
    with pytest.raises(SourceError, match=r"would escape"):
        fetch(entry("pkg://resemblyzer==0.1.4/../../etc/passwd", sha256="0" * 64))
    with pytest.raises(SourceError, match=r"would escape"):
        fetch(entry("hf://acme/tiny@v1/weights/", files={"../../x.bin": "0" * 64}))


def test_corrupt_blob_already_in_the_cache_is_replaced(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    e = entry("hf://acme/tiny@main/model.safetensors")
    path = fetch(e)
    blob = path.resolve()
    blob.write_bytes(b"\0" * blob.stat().st_size)  # bit rot
    assert fetch(e).read_bytes() == TINY_V2


def test_pickle_with_a_code_payload_is_refused(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "hook": Payload()}, evil)
    with pytest.raises(SourceError, match=r"refused to load: the pickle asks to import or run code"):
        load_state_dict(evil)
    assert not marker.exists()
    assert not list((home() / "converted").glob("*")) if (home() / "converted").exists() else True
