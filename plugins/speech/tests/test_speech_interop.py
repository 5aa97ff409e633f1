"""``graft export --format transformers`` for an hf-audio run, loaded back by transformers alone.

A tiny random wav2vec2 (layer-norm variant, so batches carry an attention
mask) is tuned on a generated audiofolder of low and high tones; a fresh
interpreter that never imports graftzoo loads the export with
AutoModelForAudioClassification + AutoFeatureExtractor and must give the
probabilities ``graft predict`` gives, for clips of three different lengths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graftzoo.cli import cli

pytestmark = pytest.mark.slow

TRANSFORMERS_ALONE = r"""
import json, sys
import soundfile, torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline
folder, files = sys.argv[1], json.loads(sys.argv[2])
torch.set_num_threads(1)
model = AutoModelForAudioClassification.from_pretrained(folder).eval()
fe = AutoFeatureExtractor.from_pretrained(folder)
probs = []
for f in files:
    wave, rate = soundfile.read(f, dtype="float32")
    enc = fe(wave, sampling_rate=rate, return_tensors="pt", return_attention_mask=True)
    with torch.no_grad():
        probs.append(model(**enc).logits.softmax(-1)[0].tolist())
wave, rate = soundfile.read(files[0], dtype="float32")
top = pipeline("audio-classification", model=model, feature_extractor=fe)({"raw": wave, "sampling_rate": rate})
assert not any(m.split(".")[0].startswith("graftzoo") for m in sys.modules), "graftzoo was imported"
print(json.dumps({"probs": probs, "labels": model.config.id2label, "pipeline": top[0]["label"]}))
"""


def tones(root: Path, lengths: tuple[float, ...] = (0.4, 0.6)) -> Path:
    """An audiofolder: low (220-330 Hz) and high (1-1.5 kHz) tones with a little noise, 16 kHz."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for label, (lo, hi) in {"low": (220, 330), "high": (1000, 1500)}.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            t = np.arange(int(16000 * lengths[i % len(lengths)])) / 16000
            wave = 0.5 * np.sin(2 * np.pi * rng.uniform(lo, hi) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / label / f"{i}.wav", wave.astype(np.float32), 16000)
    return root


def _registry(tmp_path: Path, save_tiny_encoder: Callable[[Path, str], Path], monkeypatch: pytest.MonkeyPatch,
              variant: str) -> Path:
    folder = save_tiny_encoder(tmp_path / "tiny-w2v", variant)
    from graftzoo.testing.registry_file import pinned_registry

    registry = pinned_registry(tmp_path / "registry.toml", "tiny-w2v.test", "audio", "hf-audio", folder)
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(registry))
    return folder


@pytest.fixture
def tiny_audio_registry(tmp_path: Path, save_tiny_encoder: Callable[[Path, str], Path],
                        monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with a tiny layer-norm wav2vec2 (batches carry attention masks)."""
    return _registry(tmp_path, save_tiny_encoder, monkeypatch, "wav2vec2-stable")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_audio_run_exports_an_audio_classifier_with_the_same_predictions(tiny_audio_registry: Path,
                                                                         tmp_path: Path) -> None:
    data = tones(tmp_path / "tones")
    run = tmp_path / "run"
    _invoke("tune", "tiny-w2v.test", str(data), "--policy", "full", "--epochs", "3", "--lr", "0.003",
            "--batch-size", "4", "--backbone-option", "layer=2", "--out", str(run))
    folder = Path(json.loads(_invoke("export", str(run), "--format", "transformers", "--json"))["path"])
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= {
        p.name for p in folder.iterdir()}
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["Wav2Vec2ForSequenceClassification"]
    probe = tones(tmp_path / "probe", lengths=(0.3, 0.55, 0.9))
    files = sorted(str(p) for p in probe.rglob("*.wav"))[:3]  # high/0-2: 0.3, 0.55 and 0.9 s
    ours = json.loads(_invoke("predict", str(run), *files, "--json"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", TRANSFORMERS_ALONE, str(folder), json.dumps(files)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    classes = json.loads((run / "graft.json").read_text())["labels"]
    assert theirs["labels"] == {str(i): c for i, c in enumerate(classes)}
    assert theirs["pipeline"] == ours[0]["label"]
    for row, probs in zip(ours, theirs["probs"], strict=True):
        assert row["probabilities"] == pytest.approx(dict(zip(classes, probs, strict=True)), abs=1e-4)


@pytest.mark.parametrize("variant", ["wav2vec2", "wav2vec2-stable"])
def test_onnx_audio_export_takes_any_length(variant: str, tmp_path: Path,
                                            save_tiny_encoder: Callable[[Path, str], Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime
    import soundfile as sf
    from transformers import AutoFeatureExtractor

    _registry(tmp_path, save_tiny_encoder, monkeypatch, variant)
    data = tones(tmp_path / "tones")
    run = tmp_path / "run"
    _invoke("tune", "tiny-w2v.test", str(data), "--epochs", "2", "--batch-size", "4", "--out", str(run))
    out = tmp_path / "onnx" / "model.onnx"
    _invoke("export", str(run), "--format", "onnx", "--out", str(out))
    assert {"labels.json", "preprocessing.json", "preprocessor_config.json", "config.json"} <= {
        p.name for p in out.parent.iterdir()}
    labels = json.loads((out.parent / "labels.json").read_text())
    fe = AutoFeatureExtractor.from_pretrained(str(out.parent))  # the shipped feature extractor
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", "length"]] * len(session.get_inputs())
    probe = tones(tmp_path / "probe", lengths=(0.3, 0.55, 0.9))
    files = sorted(str(p) for p in probe.rglob("*.wav"))[:3]  # high/0-2: 0.3, 0.55 and 0.9 s
    assert len({sf.info(f).frames for f in files}) == 3
    ours = json.loads(_invoke("predict", str(run), *files, "--json"))
    for f, row in zip(files, ours, strict=True):  # one clip per call: group-norm encoders see no padding
        wave, rate = sf.read(f, dtype="float32")
        enc = fe(wave, sampling_rate=rate, return_tensors="np", return_attention_mask=True)
        probs = session.run(None, {i.name: enc[i.name] for i in session.get_inputs()})[0][0]
        assert row["label"] == labels[int(probs.argmax())]
        assert row["probabilities"] == pytest.approx(dict(zip(labels, probs.tolist(), strict=True)), abs=1e-4)
