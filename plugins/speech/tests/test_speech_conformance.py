"""The speech plugin against Graftzoo's conformance kit (the checks every plugin author runs).

The plugin's hooks are registered in a fresh plugin manager beside the
built-ins (the kit's ``graftzoo_plugin`` fixture), so these tests check this
source tree whether or not the plugin is installed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graftzoo import testing as kit
from graftzoo.registry import ModelEntry
from graftzoo_speech import hooks

SR = 16000
@pytest.fixture(autouse=True)
def speech_plugin(graftzoo_plugin: Callable[..., None]) -> None:
    """This tree's hooks as plugin ``speech``, with the built-ins only (no other installed plugin)."""
    graftzoo_plugin(hooks, "speech")


def voiced(seconds: float, f0: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A vowel-like sound: five harmonics of ``f0`` under a 4 Hz syllable envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    harmonics = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    return (0.2 * harmonics * envelope + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def test_plugin_registrations_and_light_import() -> None:
    table = kit.check_plugin("speech")
    assert set(table["backbones"]) == {"resemblyzer", "hf-audio"}
    assert {"audiofolder", "espeak-speakers", "espeak-keywords"} <= set(table["datasets"])
    kit.check_light_import("graftzoo_speech.hooks")


def test_audiofolder_format(tmp_path: Path, ge2e_entry: ModelEntry) -> None:
    from graftzoo_speech.resemblyzer import create

    root = tmp_path / "voices"
    for label, f0 in (("low", 110.0), ("high", 240.0)):
        (root / label).mkdir(parents=True)
        sf.write(root / label / "a.wav", voiced(0.6, f0), SR, subtype="PCM_16")
        # Another rate and two channels: the loader takes any, backbones resample and mix down.
        sf.write(root / label / "b.flac", np.stack([voiced(0.4, f0 * 1.1, 8000, seed=1)] * 2, axis=1), 8000)
    (root / "README.md").write_text("recorded by the test")  # files under ROOT are not samples
    backbone = create(ge2e_entry, None, {})  # a random init is enough to collate and embed the file paths
    data = kit.check_dataset_format("audiofolder", root, modality="audio", expected_classes=["high", "low"],
                                    backbone=backbone)
    assert len(data) == 4 and data.fingerprint_parts


@pytest.mark.slow
def test_espeak_named_set(speech_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated named set (64 words, synthesised once and kept in pytest's cache)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng sox)")
    monkeypatch.setenv("GRAFTZOO_HOME", str(speech_cache))
    data = kit.check_dataset_format("espeak-keywords-unseen", modality="audio")
    assert data.classes == ["down", "go", "left", "no", "right", "stop", "up", "yes"] and len(data) == 64


@pytest.mark.slow
def test_resemblyzer_entry_under_every_policy(ge2e_weights: Path, tmp_path: Path) -> None:
    """The real GE2E weights (pkg:// source, sha256-verified, .pt converted once) through the whole check."""
    del ge2e_weights  # the fixture skips, naming the install command, when the resemblyzer package is missing
    # 1 s, 0.8 s at 8 kHz (resampled) and 2.2 s (two partial windows, so the window mask is exercised).
    samples = [voiced(1.0, 120.0), (voiced(0.8, 210.0, 8000, seed=1), 8000), voiced(2.2, 170.0, seed=2)]
    results = kit.check_backbone_adapter("ge2e_lstm3.resemblyzer", samples, tmp_path=tmp_path)
    # No LoRA for nn.LSTM, but the projection takes adapters: every built-in policy applies.
    assert {"frozen", "full", "top-k", "gradual", "bitfit", "lora"} <= set(results), results
    assert all(v == "ok" for v in results.values()), results


def _pinned_entry(folder: Path, variant: str) -> ModelEntry:
    """A saved tiny encoder as a registry entry, pinned file by file."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    return ModelEntry(id=f"tiny_{variant}.test", modality="audio", backbone="hf-audio", source=f"file://{folder}/",
                      license="Apache-2.0", files=files)


def test_hf_audio_adapter_under_every_policy(tiny_variant: str, save_tiny_encoder: Callable[[Path, str], Path],
                                             tmp_path: Path) -> None:
    entry = _pinned_entry(save_tiny_encoder(tmp_path / tiny_variant, tiny_variant), tiny_variant)
    # Different lengths (one at 8 kHz, resampled): collate pads and forward pools over valid frames only.
    samples = [voiced(0.5, 150.0), (voiced(0.25, 220.0, 8000, seed=1), 8000), voiced(0.4, 300.0, seed=2)]
    results = kit.check_backbone_adapter(entry, samples, tmp_path=tmp_path)
    assert {"frozen", "full", "top-k", "gradual", "bitfit", "lora"} <= set(results), results
    assert all(v == "ok" for v in results.values()), results
