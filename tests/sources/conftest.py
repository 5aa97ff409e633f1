"""Fixtures for the sources tests: a real olah hub on 127.0.0.1, a fault proxy, a push hub."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hub_servers import FaultProxy, Olah, PushHub, commit_files, make_repo, safetensors_bytes

from graftzoo.registry import ModelEntry, entry_from_dict

TINY = {
    "model.safetensors": safetensors_bytes(1, 16_384),
    "config.json": b'{"arch": "tiny", "hidden": 8}\n',
    "sub/extra.safetensors": safetensors_bytes(2, 1_000),
}
TINY_V2 = safetensors_bytes(4, 16_384)
BIG = {"model.safetensors": safetensors_bytes(3, 1_000_000)}  # 4 MB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hub:
    """The olah server, the repos it serves and their commits."""

    def __init__(self, root: Path) -> None:
        mirrors = root / "mirrors"
        tiny_repo, self.tiny_v1 = make_repo(mirrors, "acme/tiny", TINY)
        import subprocess

        subprocess.run(["git", "tag", "v1"], cwd=tiny_repo, check=True, timeout=30)
        self.tiny_main = commit_files(tiny_repo, {"model.safetensors": TINY_V2}, message="v2 weights")
        _, self.big_main = make_repo(mirrors, "acme/big", BIG)
        self.server = Olah(mirrors, root / "olah")
        self.server.wait("/acme/tiny/resolve/main/config.json")
        self.url = self.server.url


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """olah serving acme/tiny (tag v1, main = v2 weights) and acme/big, once per session."""
    server = Hub(tmp_path_factory.mktemp("hub"))
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def _proxy(hub: Hub) -> Iterator[FaultProxy]:
    proxy = FaultProxy(hub.server.port)
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF cache and home, no token, no offline flag, no plugins, no progress bars, fast retries."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    monkeypatch.setenv("GRAFTZOO_NO_CATALOGUE", "1")  # registry files add to the catalogue; these tests stand alone
    monkeypatch.setenv("GRAFTZOO_PROGRESS", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # tests that need a hub point it at one
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "GRAFTZOO_PIP_ARGS", "GRAFTZOO_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    from graftzoo.sources import _hf

    monkeypatch.setattr(_hf, "BACKOFF_S", 0.01)
    return cache


@pytest.fixture
def proxy(_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy in front of olah, with no faults and an empty log; HF_ENDPOINT points at it."""
    _proxy.reset()
    monkeypatch.setenv("HF_ENDPOINT", _proxy.url)
    yield _proxy
    _proxy.reset()


@pytest.fixture
def push_hub() -> Iterator[PushHub]:
    server = PushHub(models=[
        {"id": "acme/tiny", "library_name": "timm", "pipeline_tag": "image-classification", "tags": ["timm"]},
        {"id": "acme/tiny-bert", "library_name": "transformers", "pipeline_tag": "fill-mask",
         "tags": ["transformers"]},
        {"id": "acme/tiny-gguf", "library_name": "llama.cpp", "pipeline_tag": "text-generation", "tags": []},
    ])
    yield server
    server.stop()


@pytest.fixture
def registry_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write entries to a registry.toml and point GRAFTZOO_REGISTRY at it."""

    def write(*entries: dict[str, Any]) -> Path:
        lines = []
        for e in entries:
            lines.append("[[model]]")
            for key, value in e.items():
                if key != "files":
                    lines.append(f"{key} = {_toml(value)}")
            if "files" in e:
                lines.append("[model.files]")
                lines += [f'"{k}" = "{v}"' for k, v in e["files"].items()]
        path = tmp_path / "registry.toml"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("GRAFTZOO_REGISTRY", str(path))
        return path

    return write


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def entry(source: str, sha256: str | None = None, files: dict[str, str] | None = None,
          model_id: str = "tiny.test", origin: str = "test-registry.toml") -> ModelEntry:
    """A validated registry entry for ``source``."""
    raw: dict[str, Any] = {"id": model_id, "modality": "vision", "backbone": "timm", "license": "MIT",
                           "source": source}
    if sha256:
        raw["sha256"] = sha256
    if files:
        raw["files"] = files
    return entry_from_dict(raw, origin)


def parts_left(*roots: Path) -> list[Path]:
    """Temporary download files anywhere under ``roots`` (a clean cache has none)."""
    from graftzoo.storage.atomic import TEMP_SUFFIX

    return [p for root in roots if root.exists() for p in root.rglob(f"*{TEMP_SUFFIX}")] + \
        [p for root in roots if root.exists() for p in root.rglob("*.incomplete")]
