"""The hf-audio adapter on tiny, randomly initialised wav2vec2 / HuBERT models saved to a folder.

No real weights ship offline; the adapter's job (groups, pooling, padding,
rebuilding from a run's saved config) is the same at any size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graftzoo.errors import OptionError, SourceError
from graftzoo.registry import ModelEntry
from graftzoo_speech.wav2vec import AudioEncoder, create

transformers = pytest.importorskip("transformers")

def _entry(folder: Path) -> ModelEntry:
    return ModelEntry(id="tiny_w2v.test", modality="audio", backbone="hf-audio", source=f"file://{folder}",
                      license="Apache-2.0")


def _waves(seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(16000).astype(np.float32) * 0.1,
            (rng.standard_normal(4000).astype(np.float32) * 0.1, 8000),  # 0.5 s at 8 kHz: resampled
            rng.standard_normal(11000).astype(np.float32) * 0.1]


def test_groups_pooling_and_padding(tiny_variant: str, save_tiny_encoder: Callable[[Path, str], Path],
                                    tmp_path: Path) -> None:
    variant = tiny_variant
    folder = save_tiny_encoder(tmp_path / variant, variant)
    model = create(_entry(folder), folder, {})
    names = [name for name, _ in model.groups()]
    assert names == ["feature_extractor", "feature_projection", "layer_0", "layer_1", "layer_2"]
    grouped = [id(p) for _, g in model.groups() for p in g.parameters()]
    assert len(grouped) == len(set(grouped)) == len(list(model.parameters()))
    batch = model.collate(_waves(), train=False)
    assert batch["input_values"].shape == (3, 16000) and batch["attention_mask"][1].sum() == 8000
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(model.collate([w], train=False)) for w in _waves()])
    assert together.shape == (3, 32)
    # A feature does not depend on the other utterances in its batch (the feature cache relies on it).
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_weights_are_loaded_and_a_run_can_rebuild_offline(save_tiny_encoder: Callable[[Path, str], Path],
                                                          tmp_path: Path) -> None:
    folder = save_tiny_encoder(tmp_path / "w", "wav2vec2")
    pretrained = create(_entry(folder), folder, {"layer": 2})
    reference = transformers.Wav2Vec2Model.from_pretrained(folder)
    torch.testing.assert_close(pretrained.model.state_dict(), reference.state_dict())
    assert pretrained.preprocessing()["layer"] == 2 and pretrained.preprocessing()["sample_rate"] == 16000
    # What the engine does for predict/evaluate: a random init from the run's copies, then its weights.
    run_files = tmp_path / "run"
    run_files.mkdir()
    extra = {}
    for name, path in pretrained.extra_files().items():
        (run_files / name).write_bytes(path.read_bytes())
        extra[name] = str(run_files / name)
    assert set(extra) == {"config.json", "preprocessor_config.json"}
    rebuilt = create(_entry(tmp_path / "gone"), None, {"layer": 2, "extra_files": extra})
    rebuilt.load_state_dict(pretrained.state_dict())
    batch = pretrained.collate(_waves(), train=False)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch), pretrained(batch))
        assert not torch.allclose(pretrained(batch), create(_entry(folder), folder, {})(batch))  # layer matters


def test_refuses_what_it_cannot_build(save_tiny_encoder: Callable[[Path, str], Path], tmp_path: Path) -> None:
    folder = save_tiny_encoder(tmp_path / "w", "wav2vec2")
    with pytest.raises(OptionError, match="image_size"):
        create(_entry(folder), folder, {"image_size": 64})
    with pytest.raises(OptionError, match="out of range"):
        create(_entry(folder), folder, {"layer": 9})
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(SourceError, match="not an audio encoder"):
        create(_entry(bert), bert, {})
    with pytest.raises(SourceError, match=r"no config\.json"):
        create(_entry(tmp_path), tmp_path, {})


def test_is_a_backbone_with_lora_targets(save_tiny_encoder: Callable[[Path, str], Path], tmp_path: Path) -> None:
    folder = save_tiny_encoder(tmp_path / "w", "hubert")
    model = create(_entry(folder), folder, {})
    assert isinstance(model, AudioEncoder) and model.modality == "audio" and model.feature_dim == 32
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert set(model.lora_targets()) <= names
