"""Every cache layer verifies itself: a damaged conversion or feature file is rebuilt, never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from graftzoo.cli import cli
from graftzoo.storage import atomic, checked, sweep


def flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def pth(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = {"a.weight": torch.randn(64, 32), "a.bias": torch.randn(64), "b": torch.arange(10)}
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    return path, state


def test_damaged_conversion_is_rebuilt_never_used(pth: tuple[Path, dict[str, torch.Tensor]]) -> None:
    from graftzoo.sources._safeload import load_state_dict

    path, state = pth
    first = load_state_dict(path)
    (target,) = (Path(os.environ["GRAFTZOO_HOME"]) / "converted").glob("*.safetensors")
    assert checked.sidecar(target).is_file()
    for where in (0.9, 0.5, 0.05):  # tensor data, and the safetensors header
        flip(target, where)
        again = load_state_dict(path)
        assert all(torch.equal(again[k], state[k]) for k in state), f"damaged conversion used (byte at {where})"
        assert checked.check(target).status == "ok"  # rebuilt on the spot
    assert all(torch.equal(first[k], state[k]) for k in state)


def test_conversion_without_checksum_record_is_rebuilt(pth: tuple[Path, dict[str, torch.Tensor]]) -> None:
    """A writer killed between the two renames leaves the file without its record: never trusted."""
    from graftzoo.sources._safeload import load_state_dict

    path, state = pth
    load_state_dict(path)
    (target,) = (Path(os.environ["GRAFTZOO_HOME"]) / "converted").glob("*.safetensors")
    checked.sidecar(target).unlink()
    target.write_bytes(target.read_bytes()[:-7])  # and truncated
    again = load_state_dict(path)
    assert torch.equal(again["a.weight"], state["a.weight"])
    assert checked.check(target).status == "ok"


def test_a_file_whose_writer_may_still_be_writing_its_record_is_skipped_not_removed(tmp_path: Path) -> None:
    """Another process between its two renames: the reader rebuilds; only an old record-less file is removed."""
    entry = tmp_path / "features.safetensors"
    checked.save_checked(entry, b"features", "features")
    checked.sidecar(entry).unlink()  # as seen between the writer's data rename and its record rename
    assert checked.read_checked(entry, "features") is None
    assert entry.is_file()  # left for the writer
    old = entry.stat().st_mtime - checked.WRITER_GRACE_S - 1
    os.utime(entry, (old, old))  # a writer that old was killed: the file is removed
    assert checked.read_checked(entry, "features") is None
    assert not entry.exists()


def test_damaged_features_are_recomputed(tiny_plugin: str) -> None:
    from graftzoo.train.build import build_backbone, resolve_entry
    from graftzoo.train.features import extract_features, feature_cache_dir
    from tests.train import tiny

    backbone = build_backbone(resolve_entry(tiny_plugin), pretrained=True, options={})
    data = tiny.digits(per_class=6)
    clean = extract_features(backbone, data, cache_key="k", progress=False)
    (cached,) = feature_cache_dir().glob("*.safetensors")
    torch.manual_seed(1)  # the poisoned copy must not come back
    flip(cached, 0.8)
    assert checked.check(cached).status == "checksum differs"
    again = extract_features(backbone, data, cache_key="k", progress=False)
    assert torch.equal(again, clean)
    assert checked.check(cached).status == "ok"


def test_cache_verify_repairs_conversions_and_removes_features(tiny_plugin: str, tmp_path: Path,
                                                               pth: tuple[Path, dict[str, torch.Tensor]]) -> None:
    from graftzoo.sources._safeload import load_state_dict
    from graftzoo.train.build import build_backbone, resolve_entry
    from graftzoo.train.features import extract_features, feature_cache_dir

    home = Path(os.environ["GRAFTZOO_HOME"])
    path, _ = pth
    # a pull record, so verify knows where the conversion came from
    from graftzoo.sources import _cache

    digest = _cache.sha256_file(path)
    _cache.write_json(_cache.manifest_path("w.test"), {"id": "w.test", "source": f"file://{path}", "path": str(path),
                                                       "files": {path.name: {"sha256": digest, "size": 1,
                                                                             "path": str(path)}}, "owned": []})
    load_state_dict(path)
    from tests.train import tiny

    backbone = build_backbone(resolve_entry(tiny_plugin), pretrained=True, options={})
    extract_features(backbone, tiny.digits(per_class=4), cache_key="k", progress=False)
    (conv,) = (home / "converted").glob("*.safetensors")
    (feats,) = feature_cache_dir().glob("*.safetensors")
    flip(conv)
    flip(feats)
    result = CliRunner().invoke(cli, ["cache", "verify"])
    assert result.exit_code == 0, result.output
    assert f"conversion {conv.name}" in result.output and "repaired" in result.output
    assert f"features {feats.name}" in result.output and "removed" in result.output
    assert "4 files verified (2 damaged derived file(s) repaired or removed" in result.output
    assert checked.check(conv).status == "ok" and not feats.exists()
    again = CliRunner().invoke(cli, ["cache", "verify"])
    assert again.exit_code == 0 and "3 files verified." in again.output  # two pulls + the conversion


def test_cache_gc_removes_leftovers_of_dead_writers_only(tmp_path: Path) -> None:
    home = Path(os.environ["GRAFTZOO_HOME"])
    features = home / "features"
    features.mkdir(parents=True)
    dead = features / ".abc.safetensors.999999999-0123456789ab.graft-tmp"
    dead.write_bytes(b"partial")
    live = atomic.temp_beside(features / "x.safetensors")  # this very process: still writing
    live.write_bytes(b"partial")
    legacy = features / "tmpab12cd.tmp"
    legacy.write_bytes(b"old scheme")
    os.utime(legacy, (0, 0))
    orphan_record = features / "gone.safetensors.sha256"
    orphan_record.write_text('{"sha256": "0", "size": 1}')
    no_record = features / "half.safetensors"
    no_record.write_bytes(b"x")
    os.utime(no_record, (0, 0))
    memo = home / "hashes" / "m.json"
    memo.parent.mkdir()
    memo.write_text('{"path": "/nonexistent/file", "size": 1, "mtime_ns": 1, "sha256": "0"}')
    result = CliRunner().invoke(cli, ["cache", "gc", "--dry-run"])
    assert result.exit_code == 0 and "5 leftover(s) found" in result.output and dead.exists()
    result = CliRunner().invoke(cli, ["cache", "gc"])
    assert result.exit_code == 0, result.output
    assert "5 leftover(s) removed" in result.output and "pid 999999999" in result.output
    assert not any(p.exists() for p in (dead, legacy, orphan_record, no_record, memo))
    assert live.exists()
    assert sweep.leftovers([home], home) == []
