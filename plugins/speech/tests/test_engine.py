"""End to end through the CLI: tune the pretrained encoder (frozen), then predict a file as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _graft(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "graftzoo", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_tune_frozen_then_predict_json(voices_set: Path, ge2e_weights: Path, tmp_path: Path) -> None:
    if not (Path(__file__).resolve().parents[3] / "core" / "cli" / "tune.py").exists():
        pytest.skip("this Graftzoo has no tune command")
    run = tmp_path / "run"
    tuned = _graft("tune", "ge2e_lstm3.resemblyzer", str(voices_set), "--policy", "frozen", "--epochs", "20",
                   "--lr", "0.01", "--val-split", "0.25", "--out", str(run))
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    info = json.loads((run / "graft.json").read_text())
    assert info["preprocessing"]["n_mels"] == 40 and info["preprocessing"]["kind"] == "resemblyzer-mel"
    # small data, no --augment: the probe also fits on views of the adapter's default noise (augment.FROZEN_VIEWS)
    assert info["config"]["augment_views"] == 4 and "4 augmented view(s)" in tuned.stdout + tuned.stderr
    wav = sorted((voices_set / "en-us-f2").glob("*.wav"))[0]
    predicted = _graft("predict", str(run), str(wav), "--json", "--top", "4")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    out = json.loads(predicted.stdout)
    assert out[0]["label"] == "en-us-f2"
    probs = out[0]["probabilities"]
    assert set(probs) == {"en-029-f5", "en-gb-scotland-m2", "en-us-f2", "en-us-m1"}
    assert abs(sum(probs.values()) - 1.0) < 1e-3 and max(probs, key=probs.get) == "en-us-f2"
