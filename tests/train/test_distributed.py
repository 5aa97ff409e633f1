"""Two CPU processes (torchrun, gloo) give the same result as one, within tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("dist_train.py")


@pytest.mark.slow
def test_two_processes_match_one(tiny_weights_dir: Path, tmp_path: Path, graftzoo_home: Path) -> None:
    env = {**os.environ, "GRAFTZOO_NO_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    for d in (single, double):
        d.mkdir()
    subprocess.run([sys.executable, str(SCRIPT), str(tiny_weights_dir), str(single)], check=True, env=env,
                   timeout=300)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(SCRIPT),
                           str(tiny_weights_dir), str(double)], env=env, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((single / "result.json").read_text())
    two = json.loads((double / "result.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)
    assert two["final"]["loss"] == pytest.approx(one["final"]["loss"], abs=1e-4)
    assert two["final"]["accuracy"] == pytest.approx(one["final"]["accuracy"], abs=1e-6)


INFER = Path(__file__).with_name("dist_infer.py")


@pytest.mark.slow
def test_inference_two_processes_match_one(tiny_weights_dir: Path, tmp_path: Path, graftzoo_home: Path) -> None:
    """Feature extraction, rank and evaluate sharded over 2 gloo processes equal one process within 1e-6."""
    from graftzoo.plugins import reset_plugins
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from tests.train import tiny

    reset_plugins(entry_points=False)
    undo = tiny.install(tiny_weights_dir)
    try:
        train(TrainConfig(model=tiny.MODEL_ID, data="tinydigits", epochs=1, batch_size=16), tmp_path / "run",
              progress=False)
    finally:
        undo()
    env = {**os.environ, "GRAFTZOO_NO_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    for d in (single, double):
        d.mkdir()
    args = [str(INFER), str(tiny_weights_dir), str(tmp_path / "run")]
    subprocess.run([sys.executable, *args, str(single)], check=True, env=env, timeout=300)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", *args, str(double)], env=env,
                          timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((single / "result.json").read_text())
    two = json.loads((double / "result.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    a, b = np.asarray(one["features"]), np.asarray(two["features"])
    assert a.shape == b.shape == (105, 16)
    assert np.abs(a - b).max() <= 1e-6
    for key in ("logme", "knn", "linear"):
        assert two["rank"][key] == pytest.approx(one["rank"][key], abs=1e-6)
    for key in ("accuracy", "loss", "macro_f1", "n"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], abs=1e-6)
    assert two["metrics"]["confusion"] == one["metrics"]["confusion"]
    for key in ("domain_accuracy", "mmd2"):
        assert two["report"]["shift"][key] == pytest.approx(one["report"]["shift"][key], abs=1e-6)
