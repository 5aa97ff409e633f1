"""Full disks and read-only homes: the previous good state stays, and one clear error says what to do."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from graftzoo.cli import cli
from graftzoo.errors import StorageError
from graftzoo.storage import atomic

from .conftest import fill


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{atomic.TEMP_SUFFIX}")]


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "no space left"),
                                             (errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_injected_write_errors_keep_the_previous_file(code: int, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = Path(os.environ["GRAFTZOO_HOME"]) / "features" / "x.safetensors"
    atomic.write_bytes(target, b"previous good state")

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", fail)
    with pytest.raises(StorageError) as err:
        atomic.write_bytes(target, b"new state that does not fit", "cached features")
    message = str(err.value)
    assert words in message and str(target) in message and "GRAFTZOO_HOME" in message
    assert target.read_bytes() == b"previous good state" and temps(target.parent) == []


def test_injected_error_outside_home_points_at_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(StorageError, match=r"another --out") as err:
        atomic.write_json(tmp_path / "run" / "graft.json", {"a": 1}, "the run file graft.json")
    assert "GRAFTZOO_HOME" not in str(err.value) and temps(tmp_path) == []


def test_checkpoint_on_a_full_disk_keeps_the_last_one_then_resumes(small_fs: Callable[..., Path],
                                                                   config: Callable[..., Any], tmp_path: Path) -> None:
    from graftzoo.train import checkpoint as loop
    from graftzoo.train.engine import resume, train

    cfg = config(policy="top-k", unfreeze=1, epochs=3)
    reference = train(cfg, tmp_path / "reference", progress=False)
    disk = small_fs("disk", size="2m")
    out = disk / "run"

    def full_after_first(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            fill(disk)

    with pytest.raises(StorageError, match=r"no space left .*checkpoint") as err:
        train(cfg, out, progress=False, on_epoch_end=full_after_first)
    assert "another --out" in str(err.value)
    assert loop.load_checkpoint(out)["epoch"] == 1 and temps(out) == []
    (disk / "filler").unlink()
    result = resume(out, progress=False)
    assert result["status"] == "complete"
    assert abs(result["final"]["accuracy"] - reference["final"]["accuracy"]) <= 0.005
    assert result["epochs"][-1]["train_loss"] == pytest.approx(reference["epochs"][-1]["train_loss"], abs=1e-4)


def test_features_into_a_full_home(small_fs: Callable[..., Path], tiny_plugin: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo.train.build import build_backbone, resolve_entry
    from graftzoo.train.features import extract_features
    from tests.train import tiny

    home = small_fs("home", size="1m")
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    backbone = build_backbone(resolve_entry(tiny_plugin), pretrained=True, options={})
    data = tiny.digits(per_class=40)
    (home / "locks").mkdir(exist_ok=True)
    fill(home)
    with pytest.raises(StorageError, match=r"no space left.*GRAFTZOO_HOME") as err:
        extract_features(backbone, data, cache_key="k", progress=False)
    assert "cached features" in str(err.value)
    assert not list((home / "features").glob("*")) if (home / "features").exists() else True
    (home / "filler").unlink()
    assert extract_features(backbone, data, cache_key="k", progress=False).shape == (len(data), 16)


def test_conversion_into_a_full_home(small_fs: Callable[..., Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo.sources._safeload import load_state_dict

    state = {"w": torch.randn(300, 300)}  # 360 KB: does not fit once the disk is full
    torch.save(state, tmp_path / "w.pth")
    home = small_fs("home", size="1m")
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    for folder in ("locks", "hashes", "converted"):
        (home / folder).mkdir()
    fill(home)
    with pytest.raises(StorageError, match=r"no space left.*conversion.*GRAFTZOO_HOME"):
        load_state_dict(tmp_path / "w.pth")
    assert list((home / "converted").iterdir()) == []


def test_read_only_home_is_one_clear_error(small_fs: Callable[..., Path], tiny_plugin: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    home = small_fs("home", size="1m", read_only=True)
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--policy", "frozen", "--epochs", "1",
                                      "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "read-only" in errors[0] and f"GRAFTZOO_HOME (now {home})" in errors[0]
    assert "Traceback" not in result.output
    # it failed before the run directory was made: nothing half-written is left
    assert not out.exists() and temps(tmp_path) == []
    print(errors[0])
