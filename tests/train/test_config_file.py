"""``graft tune --config FILE`` (TOML, YAML, a run's graft.json), flags overriding it, and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graftzoo import hookimpl
from graftzoo.cli import cli
from graftzoo.plugins import get_plugins
from tests.train import tiny


def graft(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


class _ThreeDigits:
    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        register("tinydigits3", lambda location, **_: tiny.digits(range(3)), modality="vision", named=True)


@pytest.fixture
def three_digits(tiny_plugin: str) -> Iterator[str]:
    get_plugins().add(_ThreeDigits(), "graftzoo-test-three")
    yield "tinydigits3"
    get_plugins().remove("graftzoo-test-three")


def _final(run: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((run / "graft.json").read_text())
    return info


@pytest.mark.parametrize("kind", ["toml", "yaml"])
def test_config_file_options_and_flags_override_them(kind: str, tiny_plugin: str, tmp_path: Path) -> None:
    recipe = tmp_path / f"recipe.{kind}"
    if kind == "toml":
        recipe.write_text(f'model = "{tiny_plugin}"\ndata = "tinydigits"\npolicy = "top-k"\nunfreeze = 1\n'
                          'epochs = 3\nbatch-size = 16\nlr = 0.01\nhead = "mlp"\nhidden = 12\n'
                          '[backbone_options]\nscale = 1.5\n', encoding="utf-8")
    else:
        recipe.write_text(f"model: {tiny_plugin}\ndata: tinydigits\npolicy: top-k\nunfreeze: 1\nepochs: 3\n"
                          "batch_size: 16\nlr: 0.01\nhead: mlp\nhidden: 12\nbackbone_options:\n  scale: 1.5\n",
                          encoding="utf-8")
    run = tmp_path / "run"
    code, out = graft("tune", "--config", str(recipe), "--epochs", "2", "--lr", "0.02", "--out", str(run))
    assert code == 0, out
    config = _final(run)["config"]
    assert config["epochs"] == 2 and config["lr"] == 0.02  # the command line wins
    assert (config["policy"], config["unfreeze"], config["head"], config["hidden"], config["batch_size"]) == \
        ("top-k", 1, "mlp", 12, 16)  # the rest came from the file
    assert config["backbone_options"] == {"scale": 1.5} and len(_final(run)["epochs"]) == 2


def test_replaying_a_run_gives_equal_metrics_and_data_swaps_the_data(three_digits: str, tiny_plugin: str,
                                                                     tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    code, out = graft("tune", tiny_plugin, "tinydigits", "--policy", "lora", "--lora-rank", "2", "--epochs", "2",
                      "--lr", "0.01", "--batch-size", "16", "--seed", "3", "--out", str(first))
    assert code == 0, out
    code, out = graft("tune", "--config", str(first / "graft.json"), "--out", str(again))
    assert code == 0, out
    a, b = _final(first), _final(again)
    assert a["config"] == b["config"]
    assert a["final"]["accuracy"] == b["final"]["accuracy"] and a["final"]["loss"] == b["final"]["loss"]
    assert [e["val_loss"] for e in a["epochs"]] == [e["val_loss"] for e in b["epochs"]]
    code, out = graft("tune", "--config", str(first / "graft.json"), "--data", three_digits, "--out", str(other))
    assert code == 0, out
    c = _final(other)
    assert c["data"]["spec"] == "tinydigits3" and c["labels"] == ["0", "1", "2"]
    assert {k: v for k, v in c["config"].items() if k != "data"} == {k: v for k, v in a["config"].items()
                                                                      if k != "data"}


def test_bad_config_files_are_one_clear_error(tiny_plugin: str, tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('epoch = 3\n', encoding="utf-8")
    code, out = graft("tune", "--config", str(typo))
    assert code == 2 and "unknown option 'epoch'" in out and str(typo) in out and "epochs" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [3\n", encoding="utf-8")
    code, out = graft("tune", "--config", str(broken))
    assert code == 2 and "not valid YAML" in out and "Traceback" not in out
    code, out = graft("tune", "--config", str(tmp_path / "recipe.ini"))
    assert code == 2 and "recipe.ini" in out


def test_shell_completion_lists_model_ids_and_policies() -> None:
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_GRAFT_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}
        proc = subprocess.run([sys.executable, "-c", "from graftzoo.cli import main; main()"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line.startswith("plain,")]

    assert "mobilenetv2_100.tv_in1k" in complete("graft tune mobilenet")
    assert all(c.startswith("mobilenet") for c in complete("graft tune mobilenet"))
    assert {"frozen", "full", "top-k", "gradual", "bitfit", "lora"} <= set(complete("graft tune m d --policy "))
    assert complete("graft tune m d --policy lo") == ["lora"]
    assert {"linear", "mlp"} <= set(complete("graft tune m d --head "))
