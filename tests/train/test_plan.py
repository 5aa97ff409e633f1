"""The run plan: everything validated once before anything is written, one split, one lookup of each part."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from graftzoo.cli import cli
from graftzoo.errors import DataError, OptionError, PluginError, TrainingError
from graftzoo.train.engine import resume, train
from tests.train import tiny


@pytest.mark.parametrize(("overrides", "message"), [
    ({"policy": "frozen", "unfreeze": 2}, r"--unfreeze 2 does not apply to policy 'frozen'; it is read by gradual, "
                                          r"top-k"),
    ({"policy": "frozen", "lr_decay": 0.5}, r"--lr-decay 0.5 does not apply to policy 'frozen'"),
    ({"policy": "full", "lora_rank": 4}, r"--lora-rank 4 does not apply to policy 'full'; it is read by lora"),
    ({"policy": "top-k", "unfreeze": 1, "unfreeze_every": 2}, r"--unfreeze-every 2 does not apply to policy 'top-k'"),
])
def test_options_the_policy_ignores_are_refused_before_anything_is_written(
        config: Any, tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        train(config(**overrides), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_options_a_policy_reads_are_kept(config: Any, tmp_path: Path) -> None:
    info = train(config(policy="top-k", unfreeze=1, lr_decay=0.5, epochs=1), tmp_path / "run", progress=False)
    assert info["config"]["unfreeze"] == 1 and info["config"]["lr_decay"] == 0.5


def test_data_of_another_modality_is_said_plainly(config: Any, tmp_path: Path) -> None:
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\ngreat film,pos\nawful film,neg\nfine film,pos\nbad film,neg\n")
    with pytest.raises(DataError, match=r"reviews\.csv is text data but tinycnn\.test is a vision model; choose a "
                                        r"text model \('graft list --modality text'\)"):
        train(config(data=str(csv)), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_fixed_input_size_refuses_another_image_size_by_name(config: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    forward = tiny.TinyCNN.forward

    def fixed(self: Any, batch: torch.Tensor) -> torch.Tensor:  # as timm's ViT: the patch grid is fixed
        assert batch.shape[-1] == 8, f"Input width ({batch.shape[-1]}) doesn't match model (8)."
        return forward(self, batch)

    monkeypatch.setattr(tiny.TinyCNN, "forward", fixed)
    for policy in ("frozen", "full"):
        with pytest.raises(OptionError, match=r"tinycnn\.test cannot take --image-size 12 \(its input size is fixed"
                                              r"\).*leave --image-size out"):
            train(config(policy=policy, image_size=12), tmp_path / policy, progress=False)
        assert not (tmp_path / policy).exists()


def test_a_broken_feature_dim_is_one_named_error_and_writes_nothing(config: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny.TinyCNN, "feature_dim", 24)
    for policy in ("frozen", "full"):
        with pytest.raises(PluginError, match=r"backbone adapter 'tinycnn-test' of plugin 'graftzoo-test-tiny' "
                                              r"\(TinyCNN\): declares feature_dim 24 but returns features of shape "
                                              r"\(2, 16\)"):
            train(config(policy=policy), tmp_path / policy, progress=False)
        assert not (tmp_path / policy).exists()


def test_a_frozen_run_checkpoints_the_head_only_and_resumes(config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # --probe sgd: epochs of AdamW on the cached features (the default L-BFGS probe has no epochs to checkpoint)
    whole = train(config(policy="frozen", probe="sgd", epochs=3), tmp_path / "whole", progress=False)

    def stop(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingError, match="--resume"):
        train(config(policy="frozen", probe="sgd", epochs=3), out, progress=False, on_epoch_end=stop)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert "model" not in state and set(state["head"]) == {"0.weight", "0.bias"}
    assert (out / "checkpoint.pt").stat().st_size < 20_000  # the tiny backbone alone is ~25 kB
    resumed = resume(out, progress=False)
    assert resumed["final"]["accuracy"] == pytest.approx(whole["final"]["accuracy"], abs=1e-6)
    assert resumed["final"]["loss"] == pytest.approx(whole["final"]["loss"], abs=1e-5)


def test_graft_tune_parses_the_registry_once_and_looks_each_part_up_once(
        tiny_plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import graftzoo.registry
    from graftzoo.plugins import Plugins

    registries = Counter[str]()
    lookups = Counter[tuple[str, str]]()
    parse, get = graftzoo.registry.parse_registry_document, Plugins.get

    def counting_parse(path: Path) -> Any:
        registries[str(path)] += 1
        return parse(path)

    def counting_get(self: Plugins, kind: str, name: str) -> Any:
        lookups[(kind, name)] += 1
        return get(self, kind, name)

    monkeypatch.setattr(graftzoo.registry, "parse_registry_document", counting_parse)
    monkeypatch.setattr(Plugins, "get", counting_get)
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--policy", "frozen", "--epochs", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert registries and set(registries.values()) == {1}, registries
    assert lookups == {("backbones", "tinycnn-test"): 1, ("freeze_policies", "frozen"): 1, ("heads", "linear"): 1}


def test_a_skip_bad_run_keeps_its_shift_score(tiny_plugin: str, tmp_path: Path) -> None:
    """Regression: the report re-derived the split without --skip-bad and silently dropped the shift score."""
    data = tiny.digits(per_class=12)
    rows = ["path,label"]
    for i, (sample, label) in enumerate(zip(data.samples, data.labels, strict=True)):
        np.save(tmp_path / f"{i}.npy", sample)
        rows.append(f"{i}.npy,{label}")
    rows.append("missing.npy,3")  # a bad row: only --skip-bad trains on this file
    csv = tmp_path / "digits.csv"
    csv.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["tune", tiny_plugin, str(csv), "--policy", "frozen", "--epochs", "2",
                                 "--skip-bad", "--no-refit", "--out", str(run)])  # --split val needs a held-out split
    assert result.exit_code == 0, result.output
    for split in ("val", "all"):
        result = runner.invoke(cli, ["evaluate", str(run), str(csv), "--split", split, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)["report"]
        assert report["shift"] is not None and report["shift"]["level"] in ("small", "moderate", "large")
        assert not any("not available" in w for w in report["warnings"]), report["warnings"]
    metrics = json.loads(result.output)
    assert metrics["macro_f1"] == pytest.approx(metrics["report"]["macro_f1"])  # one macro-F1 everywhere
