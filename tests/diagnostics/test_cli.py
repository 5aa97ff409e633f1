"""`graft rank` and `graft adapt` end to end on the engine's tiny CNN test plugin."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from graftzoo import hookimpl
from graftzoo.cli import cli
from graftzoo.data import LabelledData
from graftzoo.plugins import get_plugins
from tests.train import tiny

SHIFT_PLUGIN = "graftzoo-test-shifted"


def shifted_tinydigits(location: str, **options: Any) -> LabelledData:
    """tinydigits under a covariate shift: ink scaled x2.5 and offset by 6 (unlabelled use only)."""
    base = tiny.digits()
    return LabelledData([s * 2.5 + 6.0 for s in base.samples], base.labels, name="tinydigits-shifted",
                        modality="vision")


class ShiftPlugin:
    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        register("tinydigits-shifted", shifted_tinydigits, modality="vision", named=True)


@pytest.fixture
def plugin(tmp_path_factory: pytest.TempPathFactory, no_plugins: None, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[str]:
    # An empty core catalogue: the candidates are the tiny model alone, whatever the zoo ships.
    empty = tmp_path_factory.mktemp("registry") / "registry.toml"
    empty.write_text("")
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(empty))
    monkeypatch.setenv("GRAFTZOO_NO_CATALOGUE", "1")  # registry files add to the catalogue: turn it off
    undo = tiny.install(tmp_path_factory.mktemp("tiny-weights"))
    get_plugins().add(ShiftPlugin(), SHIFT_PLUGIN)
    yield tiny.MODEL_ID
    get_plugins().remove(SHIFT_PLUGIN)
    undo()


def graft(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_rank_scores_pretrained_above_scratch_and_reuses_the_feature_cache(plugin: str) -> None:
    result = graft("rank", "tinydigits", "--include-scratch", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {(r["model"], r["pretrained"]): r for r in report["results"]}
    assert set(rows) == {(plugin, True), (plugin, False)}
    pre, scratch = rows[(plugin, True)], rows[(plugin, False)]
    assert pre["error"] is None and pre["feature_dim"] == 16 and pre["seconds"] > 0
    # Weights pre-trained on digits 5-9 transfer to 0-4; random features do not.
    assert pre["logme"] > scratch["logme"] and pre["linear"] > scratch["linear"]
    assert report["results"][0]["pretrained"] and not pre["cached"]
    again = json.loads(graft("rank", "tinydigits", "--models", plugin, "--folds", "3", "--json").output)
    assert again["results"][0]["cached"] and again["results"][0]["logme"] == pytest.approx(pre["logme"])
    table = graft("rank", "tinydigits", "--models", plugin, "--models", f"{plugin}:scratch", "--folds", "3",
                  "--limit-per-class", "6")
    assert "30 samples (of 120)" in table.output
    assert "(random init)" in table.output and "logme" in table.output and "total" in table.output


def test_rank_errors_are_one_line(plugin: str) -> None:
    result = graft("rank", "tinydigits", "--models", "no-such.model")
    assert result.exit_code == 1 and "unknown model 'no-such.model'" in result.output
    assert "Traceback" not in result.output


def test_adapt_writes_a_new_run_that_does_better_on_the_shifted_data(plugin: str, tmp_path: Path) -> None:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run

    run = tmp_path / "run"
    train(TrainConfig(model=plugin, data="tinydigits", policy="full", epochs=4, lr=0.01, batch_size=16), run,
          progress=False)
    target = shifted_tinydigits("")
    before = load_run(run).evaluate(target.samples, target.labels)["accuracy"]
    assert graft("export", str(run), "--format", "onnx").exit_code == 0  # the source's export, stale once adapted
    for method in ("adabn", "tent"):
        out = tmp_path / method
        result = graft("adapt", str(run), "tinydigits-shifted", "--method", method, "--out", str(out),
                       "--batch-size", "40", "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.output)
        info = json.loads((out / "graft.json").read_text())
        assert info["adaptation"]["method"] == method and info["adaptation"]["target"] == "tinydigits-shifted"
        assert "Adaptation" in (out / "README.md").read_text()
        assert (run / "export" / "model.onnx").is_file() and not (out / "export").exists()
        after = load_run(out).evaluate(target.samples, target.labels)["accuracy"]
        assert after == pytest.approx(record["target_accuracy_after"])
        assert after > before + 0.1, (method, before, after)
        old, new = load_file(str(run / "model.safetensors")), load_file(str(out / "model.safetensors"))
        moved = {k for k in old if not torch.equal(old[k], new[k])}
        assert moved and all(".1." in k and "backbone" in k for k in moved), moved  # BatchNorm tensors only
        if method == "adabn":
            assert not any(k.endswith(("weight", "bias")) for k in moved)
    again = graft("adapt", str(run), "tinydigits-shifted", "--method", "adabn", "--out", str(tmp_path / "adabn"))
    assert again.exit_code == 1 and "already exists" in again.output


def test_rank_skips_models_it_cannot_load_now_with_one_line(plugin: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Two more candidates of the data's modality: weights at a file:// that is gone, and hub weights never cached.
    extra = tmp_path / "extra.toml"
    extra.write_text(
        '[[model]]\nid = "gone.file"\nmodality = "vision"\nbackbone = "tinycnn-test"\nlicense = "MIT"\n'
        f'source = "file://{tmp_path}/nowhere.safetensors"\nsha256 = "{"0" * 64}"\n\n'
        '[[model]]\nid = "uncached.hub"\nmodality = "vision"\nbackbone = "tinycnn-test"\nlicense = "MIT"\n'
        f'source = "hf://acme/never-pulled@{"a" * 40}/model.safetensors"\n')
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(extra))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = graft("rank", "tinydigits", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["model"], r["error"]) for r in report["results"]] == [(plugin, None)]  # no failed rows
    assert report["skipped"] == {"gone.file": "missing", "uncached.hub": "needs network"}
    skipped_lines = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped_lines) == 1, result.stderr
    assert "weights missing: gone.file;" in skipped_lines[0]
    assert "weights need the network (HF_HUB_OFFLINE is set): uncached.hub." in skipped_lines[0]
    assert "graft pull" in skipped_lines[0]
    # Offline without saying so (the tests' hub is a closed loopback port): found by one connection attempt.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    unset = graft("rank", "tinydigits", "--folds", "3", "--json")
    assert unset.exit_code == 0 and json.loads(unset.stdout)["skipped"] == report["skipped"]
    assert "(no connection to 127.0.0.1:9): uncached.hub" in unset.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    table = graft("rank", "tinydigits", "--folds", "3")
    assert table.exit_code == 0 and "failed" not in table.output and "gone.file" not in table.stdout
    # Named explicitly and nothing left to rank: one Error line, not a table of failures.
    alone = graft("rank", "tinydigits", "--models", "uncached.hub")
    assert alone.exit_code == 1 and "no candidate can be loaded now" in alone.output
    assert "Traceback" not in alone.output
