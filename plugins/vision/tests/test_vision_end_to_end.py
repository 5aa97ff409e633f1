"""End to end through the CLI: tune on an image folder, export to ONNX, same predictions in onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graftzoo.data import LabelledData
from graftzoo_vision.data import digits_arrays, write_imagefolder

pytestmark = pytest.mark.slow


def _graft(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "graftzoo", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_tuned_run_exports_to_onnx_with_the_same_predictions(tmp_path: Path) -> None:
    images, targets = digits_arrays()
    picks = [i for d in range(3) for i in np.flatnonzero(targets == d)[:12]]
    data = LabelledData([images[i] for i in picks], [str(targets[i]) for i in picks], name="digits3")
    root = write_imagefolder(data, tmp_path / "digits3")
    run = tmp_path / "run"
    _graft("tune", "mobilenetv2_100.tv_in1k", str(root), "--policy", "frozen", "--image-size", "32",
           "--epochs", "15", "--lr", "0.01", "--out", str(run))
    onnx_path = tmp_path / "model.onnx"
    _graft("export", str(run), "--format", "onnx", "--out", str(onnx_path))

    import onnxruntime

    from graftzoo.train.run import load_run

    loaded = load_run(run)
    files = sorted(str(p) for p in root.rglob("*.png"))
    batch = loaded.model.backbone.collate(files, train=False)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    onnx_probs = session.run(None, {name: batch.contiguous().numpy()})[0]
    torch_probs = loaded.predict(files).numpy()
    assert onnx_probs.shape == (len(files), 3)
    assert np.array_equal(onnx_probs.argmax(-1), torch_probs.argmax(-1))
    assert np.allclose(onnx_probs, torch_probs, atol=1e-4)
    # The exported network is the tuned one, not a random one: it beats chance on its training digits.
    labels = [Path(f).parent.name for f in files]
    accuracy = np.mean([loaded.classes[i] == lab for i, lab in zip(onnx_probs.argmax(-1), labels, strict=True)])
    assert accuracy > 0.6
