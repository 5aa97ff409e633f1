"""``graft tune / evaluate / predict / export`` through click, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graftzoo.cli import cli
from tests.train import tiny


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.slow
def test_tune_evaluate_predict_export(runner: CliRunner, tiny_plugin: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = invoke(runner, "tune", tiny_plugin, "tinydigits", "--policy", "top-k", "--unfreeze", "1",
                       "--epochs", "2", "--lr", "0.01", "--batch-size", "16", "--head", "mlp", "--hidden", "16",
                       "--dropout", "0.1", "--out", str(run), "--baseline", "scratch",
                       "--no-refit")  # 120 samples would be refitted: --split val below needs the held-out split
    assert code == 0, out
    assert "epoch 2/2" in out and "final validation: accuracy" in out and "vs scratch" in out
    info = json.loads((run / "graft.json").read_text())
    assert info["baseline"]["gain"] is not None and (run / "baseline" / "model.safetensors").is_file()
    assert "Transfer vs. training from scratch" in (run / "README.md").read_text()

    code, out = invoke(runner, "evaluate", str(run), "tinydigits", "--split", "val", "--json")
    assert code == 0, out
    metrics = json.loads(out)
    assert metrics["n"] == 25 and metrics["accuracy"] == pytest.approx(info["final"]["accuracy"])
    assert {"accuracy", "loss", "n", "macro_f1"} <= set(metrics)

    images = []
    for i, sample in enumerate(tiny.digits(per_class=1).samples):
        images.append(str(tmp_path / f"{i}.npy"))
        np.save(images[-1], sample)
    code, out = invoke(runner, "predict", str(run), *images, "--json")
    assert code == 0, out
    predictions = json.loads(out)
    assert [p["input"] for p in predictions] == images
    assert all(p["label"] in info["labels"] and len(p["probabilities"]) == 3 for p in predictions)
    code, out = invoke(runner, "predict", str(run), str(tmp_path / "missing.npy"))
    assert code == 1 and "no such file" in out

    code, out = invoke(runner, "export", str(run), "--format", "onnx")
    assert code == 0, out
    import onnxruntime as ort
    import torch

    from graftzoo.train.run import load_run

    loaded = load_run(run)
    batch = loaded.model.backbone.collate(tiny.digits(per_class=2).samples, train=False)
    session = ort.InferenceSession(str(run / "export" / "model.onnx"))
    onnx_probs = session.run(None, {"input": batch.numpy()})[0]
    with torch.no_grad():
        torch_probs = loaded.model(batch).softmax(-1).numpy()
    assert np.allclose(onnx_probs, torch_probs, atol=1e-4)
    code, out = invoke(runner, "export", str(run), "--format", "safetensors")
    assert code == 0 and (run / "export" / "model.safetensors").is_file()
    code, out = invoke(runner, "export", str(run), "--format", "safetensors")
    assert code == 1 and "already exists" in out


def test_cli_errors_are_one_line(runner: CliRunner, tiny_plugin: str, tmp_path: Path) -> None:
    code, out = invoke(runner, "tune", tiny_plugin, "tinydigits", "--policy", "nope")
    assert code == 1 and "valid: bitfit, frozen, full, gradual, lora, top-k" in out and "Traceback" not in out
    code, out = invoke(runner, "tune", tiny_plugin)
    assert code == 2 and "MODEL and DATA are required" in out
    code, out = invoke(runner, "evaluate", str(tmp_path), "tinydigits")
    assert code == 1 and "not a Graftzoo run directory" in out
    code, out = invoke(runner, "tune", "--resume", str(tmp_path))
    assert code == 1 and "not a Graftzoo run directory" in out


def test_evaluate_split_val_refuses_a_refitted_run(runner: CliRunner, tiny_plugin: str, tmp_path: Path) -> None:
    """A frozen run refits its probe on train+validation: its validation split is no longer held out."""
    run = tmp_path / "run"
    code, out = invoke(runner, "tune", tiny_plugin, "tinydigits", "--policy", "frozen", "--out", str(run))
    assert code == 0 and "--refit: retraining on train+validation" in out, out
    code, out = invoke(runner, "evaluate", str(run), "tinydigits", "--split", "val")
    assert code == 1 and "was refitted on train+validation (120 samples)" in out, out
    assert "held-out accuracy before the refit" in out and "--no-refit" in out and "Traceback" not in out
    kept = tmp_path / "kept"
    code, out = invoke(runner, "tune", tiny_plugin, "tinydigits", "--policy", "frozen", "--no-refit",
                       "--out", str(kept))
    assert code == 0, out
    code, out = invoke(runner, "evaluate", str(kept), "tinydigits", "--split", "val", "--json")
    assert code == 0 and json.loads(out)["n"] == 25, out
