"""The speech plugin's ``hf-audio`` adapter end to end through the loopback hub (olah on 127.0.0.1).

A tiny randomly initialised wav2vec2 is saved with ``save_pretrained``,
committed to a hub repo, pulled as a whole pinned snapshot, built through
the registry and the plugin, tuned through the CLI and used by ``graft
predict`` with the hub unreachable and the download cache gone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hub_servers import Olah, commit_files, make_repo

pytest.importorskip("graftzoo_speech")
transformers = pytest.importorskip("transformers")

REPO = "acme/tiny-w2v"
MODEL_ID = "tiny_w2v.acme"
RATE = 16_000
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
             conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


@pytest.fixture(autouse=True)
def speech_only() -> Iterator[None]:
    """Built-ins plus the speech plugin's hooks (no other installed plugin), one torch thread; restored after."""
    import torch

    import graftzoo_speech.hooks
    from graftzoo.plugins import reset_plugins

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_plugins(entry_points=False).add(graftzoo_speech.hooks, "speech")
    yield
    reset_plugins()
    torch.set_num_threads(threads)


def _save_tiny(folder: Path) -> Path:
    """A seeded random wav2vec2 and its feature extractor: config.json, model.safetensors, preprocessor_config.json."""
    import torch

    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**_TINY)).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True).save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json"}
    return folder


@pytest.fixture
def audio_hub(tmp_path: Path) -> Iterator[Callable[[Path], tuple[str, str]]]:
    """Serve a folder as the hub repo ``REPO`` (its own olah: the session hub's repos are fixed); stopped after.

    The folder's files become a second commit on main; the call returns (endpoint, that commit).
    """
    servers: list[Olah] = []

    def serve(local: Path) -> tuple[str, str]:
        mirrors = tmp_path / "mirrors"
        repo, _ = make_repo(mirrors, REPO, {"README.md": b"# tiny wav2vec2\n"})
        commit = commit_files(repo, {p.name: p.read_bytes() for p in local.iterdir()}, message="tiny wav2vec2")
        servers.append(Olah(mirrors, tmp_path / "olah"))
        servers[-1].wait(f"/{REPO}/resolve/main/config.json")
        return servers[-1].url, commit

    yield serve
    for server in servers:
        server.stop()


def _sine_folder(root: Path) -> Path:
    """ROOT/LABEL/*.wav: low and high tones at two rates (one stereo), 0.3-0.5 s each."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for label, base in (("low", 220.0), ("high", 1760.0)):
        (root / label).mkdir(parents=True)
        for i in range(5):
            rate = RATE if i % 2 == 0 else 8_000
            t = np.arange(int(rate * (0.3 + 0.05 * i))) / rate
            wave = 0.4 * np.sin(2 * np.pi * base * (1 + 0.03 * i) * t) + 0.01 * rng.standard_normal(t.size)
            data = np.stack([wave, wave], axis=1) if i == 3 else wave
            sf.write(str(root / label / f"{label}{i}.wav"), data.astype(np.float32), rate)
    return root


def _cli(*args: str) -> tuple[int, str]:
    from graftzoo.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.slow
def test_hf_audio_snapshot_from_the_hub_builds_tunes_and_predicts_offline(
        audio_hub: Callable[[Path], tuple[str, str]], registry_file: Callable[..., Path], hf_env: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from graftzoo.registry import load_registry
    from graftzoo.sources import fetch
    from graftzoo.train.build import build_backbone

    local = _save_tiny(tmp_path / "saved")
    url, commit = audio_hub(local)
    monkeypatch.setenv("HF_ENDPOINT", url)
    registry_file({"id": MODEL_ID, "modality": "audio", "backbone": "hf-audio", "license": "Apache-2.0",
                   "source": f"hf://{REPO}@{commit}"})
    entry = load_registry().get(MODEL_ID)

    # The whole snapshot at the pinned commit lands, byte for byte, in the HF cache.
    snapshot = fetch(entry)
    assert snapshot == hf_env / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        assert (snapshot / name).read_bytes() == (local / name).read_bytes(), name

    # Built through the registry and the plugin, the encoder gives the features of the local save.
    backbone = build_backbone(entry)
    assert backbone.source_dir == snapshot  # type: ignore[attr-defined]
    reference = transformers.Wav2Vec2Model.from_pretrained(str(local)).eval()
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(str(local))
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (RATE, RATE)]
    with torch.no_grad():
        ours = backbone(backbone.collate(waves, train=False))
        inputs = extractor(waves, sampling_rate=RATE, return_tensors="pt")["input_values"]
        theirs = reference(inputs).last_hidden_state.mean(1)
        random_init = build_backbone(entry, pretrained=False)(backbone.collate(waves, train=False))
    assert ours.shape == (2, _TINY["hidden_size"])
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert not torch.allclose(ours, random_init, atol=1e-3)  # the weights came from the hub, not a fresh init

    # graft tune through the CLI, then predict with the hub unreachable and the download cache gone.
    data = _sine_folder(tmp_path / "tones")
    run_dir = tmp_path / "run"
    code, out = _cli("tune", MODEL_ID, str(data), "--policy", "frozen", "--epochs", "1", "--batch-size", "4",
                     "--val-split", "0.2", "--out", str(run_dir), "--json")
    assert code == 0, out
    info = json.loads((run_dir / "graft.json").read_text())
    assert info["status"] == "complete" and sorted(info["labels"]) == ["high", "low"]
    assert set(info["extra_files"]) == {"config.json", "preprocessor_config.json"}
    wavs = [data / "low" / "low0.wav", data / "high" / "high3.wav"]
    code, online = _cli("predict", str(run_dir), *map(str, wavs), "--json")
    assert code == 0, online
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    shutil.rmtree(hf_env)
    code, out = _cli("predict", str(run_dir), *map(str, wavs), "--json")
    assert code == 0, out
    predictions = json.loads(out)
    assert predictions == json.loads(online) and len(predictions) == 2  # the run alone rebuilds the same model
    for pred in predictions:
        assert pred["label"] in ("low", "high")
        assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
