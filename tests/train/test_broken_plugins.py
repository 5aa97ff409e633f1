"""Broken adapters, heads and registrations: each is one named ``Error:`` line, and nothing is written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from graftzoo import hookimpl
from graftzoo.cli import cli
from graftzoo.plugins import get_plugins
from tests.train import tiny


def boom_head(feature_dim: int, num_outputs: int, **options: Any) -> torch.nn.Module:
    raise RuntimeError("cannot allocate the class vectors")


def boom_policy(**options: Any) -> Any:
    raise KeyError("schedule")


class _Broken:
    def __init__(self, weights: Path) -> None:
        self.weights = weights

    @hookimpl
    def register_heads(self, register: Callable[..., None]) -> None:
        register("boom", boom_head)

    @hookimpl
    def register_freeze_policies(self, register: Callable[..., None]) -> None:
        register("boom-policy", boom_policy)

    @hookimpl
    def register_backbones(self, register: Callable[..., None]) -> None:
        register("typo-net", tiny.create, modalty="vision")

    @hookimpl
    def register_models(self, register: Callable[..., None]) -> None:
        register({"id": "typonet.test", "modality": "vision", "backbone": "typo-net", "license": "MIT",
                  "source": f"file://{self.weights}", "sha256": hashlib.sha256(self.weights.read_bytes()).hexdigest()})


@pytest.fixture
def broken(tiny_plugin: str, tiny_weights_dir: Path) -> Iterator[None]:
    get_plugins().add(_Broken(tiny_weights_dir / "tinycnn.safetensors"), "broken")
    yield
    get_plugins().remove("broken")


def one_error(args: list[str], out: Path) -> str:
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert not out.exists(), f"{out} was written"
    return errors[0]


def test_wrong_feature_dim(broken: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny.TinyCNN, "feature_dim", 24)
    for policy in ("frozen", "top-k"):
        line = one_error(["tune", tiny.MODEL_ID, "tinydigits", "--policy", policy, "--unfreeze", "1"] *
                         1 if policy == "top-k" else ["tune", tiny.MODEL_ID, "tinydigits"], tmp_path / policy)
        assert line == ("Error: backbone adapter 'tinycnn-test' of plugin 'graftzoo-test-tiny' (TinyCNN): declares "
                        "feature_dim 24 but returns features of shape (2, 16) for tinycnn.test; set feature_dim to "
                        "the width it returns")


def test_no_groups(broken: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny.TinyCNN, "groups", lambda self: [])
    line = one_error(["tune", tiny.MODEL_ID, "tinydigits"], tmp_path / "run")
    assert line == ("Error: backbone adapter 'tinycnn-test' of plugin 'graftzoo-test-tiny': tinycnn.test has no "
                    "groups(); freeze policies need its layers in groups")


def test_a_head_that_raises(broken: None, tmp_path: Path) -> None:
    line = one_error(["tune", tiny.MODEL_ID, "tinydigits", "--head", "boom"], tmp_path / "run")
    assert line == ("Error: head 'boom' of plugin 'broken' raised on construction: RuntimeError: cannot allocate "
                    "the class vectors")


def test_a_policy_that_raises(broken: None, tmp_path: Path) -> None:
    line = one_error(["tune", tiny.MODEL_ID, "tinydigits", "--policy", "boom-policy"], tmp_path / "run")
    assert line == "Error: freeze policy 'boom-policy' of plugin 'broken' raised on construction: KeyError: 'schedule'"


def test_a_misspelt_register_keyword(broken: None, tmp_path: Path) -> None:
    line = one_error(["tune", "typonet.test", "tinydigits"], tmp_path / "run")
    assert line.startswith("Error: typonet.test: no installed plugin provides the 'typo-net' backbone adapter")
    assert ("plugin(s) with problems, which may be why: broken (plugin 'broken': register_backbones(): unknown "
            "keyword 'modalty' for backbone adapter 'typo-net'; did you mean 'modality'?") in line


def test_evaluate_checks_the_contract_too(broken: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train

    train(TrainConfig(model=tiny.MODEL_ID, data="tinydigits", epochs=1), tmp_path / "run", progress=False)
    monkeypatch.setattr(tiny.TinyCNN, "forward", lambda self, batch: torch.zeros(len(batch), 16, dtype=torch.long))
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "run"), "tinydigits"])
    assert result.exit_code == 1 and result.output.startswith(
        "Error: backbone adapter 'tinycnn-test' of plugin 'graftzoo-test-tiny' (TinyCNN): returns torch.int64 "
        "features for tinycnn.test; features must be floating point"), result.output
