"""The NLP plugin against Graftzoo's conformance kit (the checks every plugin author runs).

The plugin's hooks are registered in a fresh plugin manager beside the
built-ins (the kit's ``graftzoo_plugin`` fixture), so these tests check this
source tree whether or not the plugin is installed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graftzoo import testing as kit
from graftzoo.registry import ModelEntry
from graftzoo_nlp import hooks

# hf-encoder takes raw texts and pre-split sentences (CoNLL): the adapter is checked on both.
TEXTS = ["a good movie", "anna lives in new york, unbelievably!"]
SENTENCES = [["Anna", "loved", "the", "film"], ["Unbelievably", "boring"]]
CONLL = (
    "-DOCSTART- -X- -X- O\n\n"
    "Anna NNP B-PER\nlives VBZ O\nin IN O\nParis NNP B-LOC\n. . O\n\n"
    "New NNP B-LOC\nYork NNP I-LOC\nis VBZ O\ngreat JJ O\n"
)


@pytest.fixture(autouse=True)
def nlp_plugin(graftzoo_plugin: Callable[..., None]) -> None:
    """This tree's hooks as plugin ``nlp``, with the built-ins only (no other installed plugin)."""
    graftzoo_plugin(hooks, "nlp")


def _pinned_entry(directory: Path, model_id: str) -> ModelEntry:
    """A file:// entry pinning every file by sha256, as registry.toml does: the kit fetches and verifies it."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}
    return ModelEntry(id=model_id, modality="text", backbone="hf-encoder", source=f"file://{directory}/",
                      license="Apache-2.0", files=files, input={"max_length": 24})


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory, make_tiny: Any) -> Callable[[str], ModelEntry]:
    """``tiny_weights(model_type)``: a tiny random encoder saved with weights, as a pinned entry (cached)."""
    import torch
    from transformers import AutoConfig, AutoModel

    made: dict[str, ModelEntry] = {}

    def build(model_type: str) -> ModelEntry:
        if model_type not in made:
            directory = make_tiny(tmp_path_factory.mktemp(f"tiny-{model_type}"), model_type=model_type)
            torch.manual_seed(0)
            AutoModel.from_config(AutoConfig.from_pretrained(directory)).save_pretrained(directory)
            assert (directory / "model.safetensors").is_file()
            made[model_type] = _pinned_entry(directory, f"tiny-{model_type}.test")
        return made[model_type]

    return build


def _all_ok(results: dict[str, str]) -> None:
    # hf-encoder has biases and attention projections: every built-in policy applies to it.
    assert {"frozen", "full", "top-k", "gradual", "bitfit", "lora"} <= set(results), results
    assert all(v == "ok" for v in results.values()), results


def test_plugin_registrations_and_light_import() -> None:
    table = kit.check_plugin("nlp")
    assert set(table["backbones"]) == {"hf-encoder"}
    assert {"conll", "rotten-tomatoes", "wnut16"} <= set(table["datasets"])
    kit.check_light_import("graftzoo_nlp.hooks")


@pytest.mark.parametrize(("model_type", "pooling", "samples"), [
    ("bert", "mean", TEXTS),
    ("bert", "pooler", SENTENCES),  # adds the pooler group on top
    ("distilbert", "cls", SENTENCES),  # another layer layout, no token_type_ids
])
def test_hf_encoder_adapter_under_every_policy(
    model_type: str, pooling: str, samples: list[Any], tiny_weights: Callable[[str], ModelEntry], tmp_path: Path
) -> None:
    results = kit.check_backbone_adapter(tiny_weights(model_type), samples, options={"pooling": pooling},
                                         tmp_path=tmp_path)
    _all_ok(results)


@pytest.mark.parametrize("where", ["tmp", "shipped"])
def test_conll_format(where: str, tmp_path: Path, tiny_weights: Callable[[str], ModelEntry]) -> None:
    from graftzoo_nlp.backbone import create

    if where == "tmp":
        sample = tmp_path / "ner.conll"
        sample.write_text(CONLL, encoding="utf-8")
        expected, n = ["B-LOC", "B-PER", "I-LOC", "O"], 2
    else:
        sample, expected, n = Path(__file__).parent / "data" / "tiny_ner.conll", ["B-LOC", "B-PER", "I-LOC", "O"], 3
    backbone = create(tiny_weights("bert"), None, {})  # random init from the entry's config: embeds word lists
    data = kit.check_dataset_format("conll", sample, modality="text", expected_classes=expected, backbone=backbone)
    assert data.task == "token-classification" and len(data) == n


def test_conll_with_an_ellipsis_token(tmp_path: Path) -> None:
    sample = tmp_path / "tweets.conll"
    sample.write_text("Wait O\n... O\nParis B-LOC\n\nok O\n", encoding="utf-8")
    data = kit.check_dataset_format("conll", sample, modality="text", expected_classes=["B-LOC", "O"])
    assert data.samples[0] == ["Wait", "...", "Paris"]


@pytest.mark.slow
def test_minilm_entry_under_every_policy(minilm_dir: Path, tmp_path: Path) -> None:
    """The real all-MiniLM-L6-v2 (pkg:// source, sha256-verified) through the whole adapter check."""
    del minilm_dir  # the fixture fails with the install command when the weight package is missing
    results = kit.check_backbone_adapter("all-minilm-l6-v2.sbert", TEXTS, options={"max_length": 16},
                                         tmp_path=tmp_path)
    _all_ok(results)
