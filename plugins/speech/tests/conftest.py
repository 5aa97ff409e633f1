"""Fixtures for the speech plugin's tests: an isolated home, the real weights, small espeak sets.

Generated speech is cached in pytest's cache directory (``.pytest_cache``),
so it is synthesised once and reused by later test runs; tests that need
espeak-ng are skipped, with the reason, where it is not installed.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graftzoo.plugins import reset_plugins
from graftzoo.registry import ModelEntry, load_registry

ENTRY_ID = "ge2e_lstm3.resemblyzer"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: with two cores shared by several processes, more threads run ~10x slower here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty $GRAFTZOO_HOME for every test: nothing is written to the user's cache."""
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# A tiny wav2vec2-family encoder: 3 conv layers (stride 80), 3 transformer layers, random weights.
_TINY_ENCODER = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=37,
                     conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
TINY_ENCODERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", {}),  # group norm: utterances run one by one
    "wav2vec2-stable": ("Wav2Vec2Config", "Wav2Vec2Model", {"do_stable_layer_norm": True,
                                                            "feat_extract_norm": "layer"}),
    "hubert": ("HubertConfig", "HubertModel", {}),
}


def _save_tiny_encoder(folder: Path, variant: str) -> Path:
    import torch
    import transformers

    config_cls, model_cls, extra = TINY_ENCODERS[variant]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**_TINY_ENCODER, **extra)
    getattr(transformers, model_cls)(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, return_attention_mask=extra.get("feat_extract_norm") == "layer").save_pretrained(folder)
    return folder


@pytest.fixture
def save_tiny_encoder() -> Callable[[Path, str], Path]:
    """``save(folder, variant)``: a seeded tiny random encoder + feature extractor, saved with save_pretrained."""
    pytest.importorskip("transformers")
    return _save_tiny_encoder


@pytest.fixture(params=sorted(TINY_ENCODERS))
def tiny_variant(request: pytest.FixtureRequest) -> str:
    """Each tiny encoder variant in turn (group-norm wav2vec2, layer-norm wav2vec2, HuBERT)."""
    return str(request.param)


@pytest.fixture
def plugins_with_speech() -> Iterator[None]:
    """The process-wide plugin manager, entry points on (the installed speech plugin), reset after."""
    reset_plugins(entry_points=True)
    yield
    reset_plugins()


@pytest.fixture(scope="session")
def speech_cache(pytestconfig: pytest.Config) -> Path:
    """A GRAFTZOO_HOME kept between test runs for generated speech (never the user's own cache)."""
    assert pytestconfig.cache is not None
    return Path(pytestconfig.cache.mkdir("graftzoo-speech-home"))


def _require_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng sox)")


@pytest.fixture(scope="session")
def voices_set(speech_cache: Path) -> Path:
    """4 voices x 4 sentences, labelled by voice: an audiofolder of generated speech."""
    _require_espeak()
    from graftzoo_speech.generate import SENTENCES, EspeakSet, cached

    spec = EspeakSet("test-voices", ("en-us+m1", "en-us+f2", "en-gb-scotland+m2", "en-029+f5"),
                     SENTENCES[4:8], label_by="voice", seed=7, pitch=(40, 60))
    return cached(spec, speech_cache)


@pytest.fixture(scope="session")
def ge2e_entry() -> ModelEntry:
    """The registry's resemblyzer entry."""
    return load_registry().get(ENTRY_ID)


@pytest.fixture(scope="session")
def ge2e_weights() -> Path:
    """pretrained.pt inside the installed resemblyzer distribution (installed --no-deps by the Makefile)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the resemblyzer package (weights) is not installed: pip install --no-deps resemblyzer==0.1.4")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def encoder(ge2e_entry: ModelEntry, ge2e_weights: Path, speech_cache: Path):  # type: ignore[no-untyped-def]
    """The pretrained speaker encoder, built once by its factory."""
    from graftzoo_speech.resemblyzer import create

    with pytest.MonkeyPatch.context() as mp:  # the safetensors conversion goes to the test cache
        mp.setenv("GRAFTZOO_HOME", str(speech_cache))
        return create(ge2e_entry, ge2e_weights, {})
