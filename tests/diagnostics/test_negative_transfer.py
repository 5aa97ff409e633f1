"""`graft tune --baseline scratch`: a gain for useful pretrained weights, the NEGATIVE TRANSFER flag for useless ones.

Both runs use the same policy (full), budget and data; only the starting
weights differ. The positive case starts from the tiny CNN pre-trained on
digits 5-9 (related features). The constructed negative case is a registry
entry whose "pretrained" checkpoint is deliberately mismatched: the tiny CNN's
weights with the last stage zeroed (convolution, BatchNorm scale and shift),
so every image maps to the same feature vector and no gradient reaches the
dead stage -- a start that is worse than random initialisation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from graftzoo import hookimpl
from graftzoo.cli import cli
from graftzoo.plugins import get_plugins
from tests.train import tiny

MISMATCHED_ID = "tinycnn.mismatched-test"
MISMATCHED_PLUGIN = "graftzoo-test-mismatched"


def dead_last_stage(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint with stage2's conv and BatchNorm affine/mean zeroed: constant features."""
    return {k: torch.zeros_like(v) if k.startswith("stage2.") and k.rsplit(".", 1)[-1] in
            ("weight", "bias", "running_mean") else v for k, v in weights.items()}


class MismatchedPlugin:
    """A registry entry for the tiny adapter whose weights file is the dead-stage checkpoint."""

    def __init__(self, weights: Path) -> None:
        self.weights = weights

    @hookimpl
    def register_models(self, register: Callable[..., None]) -> None:
        register({"id": MISMATCHED_ID, "modality": "vision", "backbone": "tinycnn-test",
                  "source": f"file://{self.weights}", "license": "MIT",
                  "sha256": hashlib.sha256(self.weights.read_bytes()).hexdigest(),
                  "tasks": ["image-classification"], "pretrained_on": "nothing useful (constructed)"})


@pytest.fixture
def models(tmp_path_factory: pytest.TempPathFactory, no_plugins: None) -> Iterator[tuple[str, str]]:
    """(useful model id, mismatched model id), both on the tiny adapter and the tinydigits data."""
    directory = tmp_path_factory.mktemp("tiny-weights")
    undo = tiny.install(directory)
    bad = tmp_path_factory.mktemp("mismatched") / "tinycnn-dead.safetensors"
    save_file(dead_last_stage(load_file(str(directory / "tinycnn.safetensors"))), str(bad))
    get_plugins().add(MismatchedPlugin(bad), MISMATCHED_PLUGIN)
    yield tiny.MODEL_ID, MISMATCHED_ID
    get_plugins().remove(MISMATCHED_PLUGIN)
    undo()


def tune_with_baseline(model: str, out: Path, val_split: float = 0.5) -> tuple[str, dict[str, Any]]:
    """The console output and graft.json of a short full fine-tune with the scratch baseline.

    tinydigits has 120 images: a 0.5 split leaves 60 for validation, enough for a verdict (30+).
    """
    result = CliRunner().invoke(cli, ["tune", model, "tinydigits", "--policy", "full", "--epochs", "3", "--lr",
                                      "0.01", "--batch-size", "16", "--baseline", "scratch", "--out", str(out),
                                      "--val-split", str(val_split)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output, json.loads((out / "graft.json").read_text())


@pytest.mark.slow
def test_scratch_baseline_reports_gain_and_flags_negative_transfer(models: tuple[str, str], tmp_path: Path) -> None:
    useful, mismatched = models
    output, info = tune_with_baseline(useful, tmp_path / "useful")
    base = info["baseline"]
    assert base["gain"] > 0 and base["negative_transfer"] is False
    assert base["gain"] == pytest.approx(info["final"]["accuracy"] - base["accuracy"])
    assert "NEGATIVE TRANSFER" not in output and f"gain {base['gain']:+.4f}" in output

    output, info = tune_with_baseline(mismatched, tmp_path / "mismatched")
    base = info["baseline"]
    # Constant features: the pretrained start can only predict one class (chance on the 5 balanced classes).
    assert info["final"]["accuracy"] <= 0.25
    assert base["gain"] < 0 and base["negative_transfer"] is True
    assert base["ci_high"] < 0 and base["n"] == 60 and base["verdict_kind"] == "negative"
    assert "NEGATIVE TRANSFER" in output
    assert "NEGATIVE TRANSFER" in (tmp_path / "mismatched" / "README.md").read_text()
    # The baseline is the same architecture from random init, trained as a full run of its own.
    scratch = json.loads((tmp_path / "mismatched" / "baseline" / "graft.json").read_text())
    assert scratch["config"]["pretrained"] is False and scratch["config"]["policy"] == "full"


@pytest.mark.slow
def test_small_validation_set_gives_an_inconclusive_verdict_not_negative_transfer(models: tuple[str, str],
                                                                                tmp_path: Path) -> None:
    # The plugin author's case: a big negative gain measured on a tiny validation set is no verdict.
    _, mismatched = models
    output, info = tune_with_baseline(mismatched, tmp_path / "small", val_split=0.1)
    base = info["baseline"]
    assert base["n"] < 30 and base["gain"] < 0
    assert base["verdict_kind"] == "inconclusive" and base["negative_transfer"] is False
    assert "NEGATIVE TRANSFER" not in output and "inconclusive" in output
    assert base["ci_low"] <= base["gain"] <= base["ci_high"]
