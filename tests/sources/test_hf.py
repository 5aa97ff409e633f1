"""hf:// pulls from a real hub server (olah) on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import BIG, TINY, TINY_V2, Hub, entry, parts_left, sha
from hub_servers import FaultProxy

from graftzoo.errors import SourceError
from graftzoo.sources import fetch, load_state_dict, pull
from graftzoo.sources.manage import disk_usage


def test_single_file_is_verified_and_lands_in_the_hf_cache(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    pinned = entry("hf://acme/tiny@v1/model.safetensors", sha256=sha(TINY["model.safetensors"]))
    path = fetch(pinned)
    assert path.read_bytes() == TINY["model.safetensors"]
    assert path == hf_env / "models--acme--tiny" / "snapshots" / hub.tiny_v1 / "model.safetensors"
    assert path.is_symlink() and path.resolve().name == sha(TINY["model.safetensors"])  # LFS blob named by sha256
    assert (hf_env / "models--acme--tiny" / "refs" / "v1").read_text() == hub.tiny_v1
    state = load_state_dict(path)
    assert list(state) == ["weight"] and state["weight"].numel() == 16_384
    gets = proxy.requests("GET", "model.safetensors")
    assert fetch(pinned) == path  # second pull: verified copy reused
    assert proxy.requests("GET", "model.safetensors") == gets


def test_branch_resolves_to_its_commit_and_revision_override(proxy: FaultProxy, hub: Hub) -> None:
    main = pull(entry("hf://acme/tiny@main/model.safetensors"))
    assert main.revision == hub.tiny_main and main.path.read_bytes() == TINY_V2
    # --revision v1 gives the older weights (registry pins no longer apply, the hub's sha256 still does).
    old = pull(entry("hf://acme/tiny@main/model.safetensors", sha256=sha(TINY_V2)), revision="v1")
    assert old.revision == hub.tiny_v1 and old.path.read_bytes() == TINY["model.safetensors"]


def test_whole_snapshot_and_pinned_directory(proxy: FaultProxy, hub: Hub) -> None:
    snap = pull(entry("hf://acme/tiny@v1"))
    assert snap.path.is_dir()
    assert {f.name for f in snap.files} == set(TINY)
    for name, data in TINY.items():
        assert (snap.path / name).read_bytes() == data
    pinned = pull(entry("hf://acme/tiny@v1/sub/", files={"extra.safetensors": sha(TINY["sub/extra.safetensors"])},
                        model_id="tiny.sub"))
    assert (pinned.path / "extra.safetensors").read_bytes() == TINY["sub/extra.safetensors"]


def test_offline_mode_uses_the_cache_only(proxy: FaultProxy, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    e = entry("hf://acme/tiny@v1/config.json")
    online = fetch(e)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert fetch(e) == online
    with pytest.raises(SourceError, match=r"HF_HUB_OFFLINE is set"):
        fetch(entry("hf://acme/big@main/model.safetensors"))


def test_hub_errors_are_one_clear_line(proxy: FaultProxy, hub: Hub) -> None:
    with pytest.raises(SourceError, match=r"not found"):
        fetch(entry("hf://acme/tiny@v1/missing.safetensors"))
    with pytest.raises(SourceError, match=r"not found|revision"):
        fetch(entry("hf://acme/nope@main/model.safetensors"))


def test_no_second_copy_next_to_snapshot_download(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    from huggingface_hub import snapshot_download

    ours = pull(entry("hf://acme/big@main"))
    before = disk_usage(hf_env)
    assert before < 1.2 * len(BIG["model.safetensors"])
    theirs = snapshot_download("acme/big", revision="main", cache_dir=str(hf_env), endpoint=os.environ["HF_ENDPOINT"])
    assert Path(theirs) == ours.path  # the same snapshot folder, found in the cache
    assert disk_usage(hf_env) - before < 16_384  # only huggingface_hub's small bookkeeping files, no new blob
    assert len(list((hf_env / "models--acme--big" / "blobs").iterdir())) == 1
    assert proxy.requests("GET", "/acme/big/resolve") == 1  # huggingface_hub did not download it again


def test_files_from_hf_hub_download_are_verified_not_copied(proxy: FaultProxy, hub: Hub, hf_env: Path) -> None:
    from huggingface_hub import hf_hub_download

    theirs = hf_hub_download("acme/big", "model.safetensors", revision="main", cache_dir=str(hf_env),
                             endpoint=os.environ["HF_ENDPOINT"])
    before = disk_usage(hf_env)
    ours = fetch(entry("hf://acme/big@main/model.safetensors", sha256=sha(BIG["model.safetensors"])))
    assert Path(theirs) == ours and disk_usage(hf_env) - before < 16_384
    assert proxy.requests("GET", "/acme/big/resolve") == 1
    assert not parts_left(hf_env)
