"""The hf-encoder adapter against the backbone contract, on tiny random encoders (fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.errors import DataError, OptionError, PluginError
from graftzoo.train.backbone import Backbone
from graftzoo_nlp.backbone import HFEncoder, create


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path, make_entry: Any) -> HFEncoder:
    torch.manual_seed(0)
    return create(make_entry(tiny_dir), None, {"max_length": 24})


def test_groups_partition_every_parameter_in_order(tiny: HFEncoder) -> None:
    assert isinstance(tiny, Backbone) and tiny.modality == "text" and tiny.supports_tokens
    names = [name for name, _ in tiny.groups()]
    assert names == ["embeddings", "layer_0", "layer_1"]
    seen = [id(p) for _, group in tiny.groups() for p in group.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in tiny.parameters()}
    # Freezing through a group reaches the real model parameters.
    emb = dict(tiny.groups())["embeddings"]
    emb.requires_grad_(False)
    assert not tiny.model.embeddings.word_embeddings.weight.requires_grad
    emb.requires_grad_(True)


def test_pooler_group_exists_only_when_pooler_pooling_is_used(tiny_dir: Path, make_entry: Any) -> None:
    backbone = create(make_entry(tiny_dir), None, {"pooling": "pooler"})
    assert [n for n, _ in backbone.groups()][-1] == "pooler"
    feats = backbone(backbone.collate(["a good film"], False))
    assert feats.shape == (1, 32) and bool((feats.abs() <= 1).all())  # tanh output
    with pytest.raises(OptionError, match="unknown pooling 'max'"):
        create(make_entry(tiny_dir), None, {"pooling": "max"})


def test_distilbert_layout_is_grouped_too(tmp_path: Path, make_entry: Any, make_tiny: Any) -> None:
    directory = make_tiny(tmp_path / "distil", model_type="distilbert")
    backbone = create(make_entry(directory, "tiny-distilbert.test"), None, {})
    assert [n for n, _ in backbone.groups()] == ["embeddings", "layer_0", "layer_1", "layer_2"]
    assert backbone.lora_targets() == ["k_lin", "q_lin", "v_lin"]
    batch = backbone.collate(["the movie", "bad"], False)
    assert "token_type_ids" not in batch
    assert backbone(batch).shape == (2, 32)


def test_forward_gives_feature_dim_and_mean_ignores_padding(tiny: HFEncoder) -> None:
    tiny.eval()
    with torch.no_grad():
        alone = tiny(tiny.collate(["a good movie"], False))
        padded = tiny(tiny.collate(["a good movie", "the new movie in new york is unbelievably bad"], False))
        cls = HFEncoder.forward.__get__(tiny)  # same module, other pooling below
    assert alone.shape == (1, tiny.feature_dim) == (1, 32)
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)
    tiny.pooling = "cls"
    try:
        with torch.no_grad():
            first = cls(tiny.collate(["a good movie"], False))
            hidden = tiny.model(**{k: v for k, v in tiny.collate(["a good movie"], False).items()
                                   if k in ("input_ids", "attention_mask", "token_type_ids")})[0]
        torch.testing.assert_close(first, hidden[:, 0])
    finally:
        tiny.pooling = "mean"


def test_word_alignment_points_at_first_sub_token(tiny: HFEncoder) -> None:
    sentences = [["Unbelievably", "good", "Paris"], ["Anna"]]
    batch = tiny.collate(sentences, True)
    tokens = [tiny.tokenizer.convert_ids_to_tokens(row) for row in batch["input_ids"].tolist()]
    assert tokens[0][:4] == ["[CLS]", "un", "##believ", "##ably"]
    assert batch["word_index"].tolist() == [[1, 4, 5], [1, 0, 0]]
    assert batch["word_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    feats = tiny.forward_tokens(batch)
    assert feats.shape == (2, 3, 32)
    with torch.no_grad():
        hidden = tiny.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
    torch.testing.assert_close(feats[0, 1], hidden[0, 4])
    assert float(feats[1, 1:].detach().abs().sum()) == 0.0
    labels = tiny.token_labels(batch, [[2, 0, 1], [1]])
    assert labels.tolist() == [[2, 0, 1], [1, -100, -100]]


def test_raw_text_alignment_matches_pre_split_words(tiny: HFEncoder) -> None:
    text = "Anna lives in New York, unbelievably!"
    from_text = tiny.collate([text], False)
    from_words = tiny.collate([["Anna", "lives", "in", "New", "York", ",", "unbelievably", "!"]], False)
    assert from_text["word_index"].tolist() == from_words["word_index"].tolist()
    assert torch.equal(from_text["input_ids"], from_words["input_ids"])


def test_words_past_max_length_are_masked_out(tiny_dir: Path, make_entry: Any) -> None:
    short = create(make_entry(tiny_dir), None, {"max_length": 6})
    batch = short.collate([["anna", "lives", "in", "paris", "france", "city"]], False)
    assert batch["input_ids"].shape[1] == 6  # [CLS] + 4 words + [SEP]
    assert batch["word_mask"].tolist() == [[1, 1, 1, 1, 0, 0]]
    assert float(short.forward_tokens(batch)[0, 4:].detach().abs().sum()) == 0.0
    # Still one label position per word: the engine reads predictions back word by word.
    assert short.token_labels(batch, [[1, 0, 0, 2, 2, 0]]).tolist() == [[1, 0, 0, 2, 2, 0]]


def test_collate_rejects_other_inputs(tiny: HFEncoder) -> None:
    with pytest.raises(DataError, match="texts \\(str\\) or word lists"):
        tiny.collate([3, 4], False)
    with pytest.raises(DataError, match="no words"):
        tiny.collate([[]], False)


def test_preprocessing_is_json_and_extra_files_rebuild_offline(
    tiny: HFEncoder, tmp_path: Path, make_entry: Any
) -> None:
    prep = tiny.preprocessing()
    assert json.loads(json.dumps(prep)) == prep
    assert prep["max_length"] == 24 and prep["pooling"] == "mean" and prep["model_type"] == "bert"
    files = tiny.extra_files()
    assert set(files) == {"config.json", "tokenizer_config.json", "vocab.txt"}
    # A run directory holding only these files rebuilds the same tokenizer and architecture.
    saved = tmp_path / "run-files"
    saved.mkdir()
    for name, path in files.items():
        (saved / name).write_bytes(path.read_bytes())
    extra = {name: str(saved / name) for name in files}  # what load_run passes for a run directory
    rebuilt = create(make_entry(Path("/nonexistent")), None, {"extra_files": extra, "max_length": 24})
    rebuilt.load_state_dict(tiny.state_dict())
    batch = rebuilt.collate(["anna loved the film"], False)
    assert torch.equal(batch["input_ids"], tiny.collate(["anna loved the film"], False)["input_ids"])
    tiny.eval()
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch), tiny(batch))


def test_lora_targets_are_attention_projections(tiny: HFEncoder) -> None:
    assert tiny.lora_targets() == ["key", "query", "value"]


def test_remote_code_models_are_refused(tmp_path: Path, make_entry: Any, make_tiny: Any) -> None:
    directory = make_tiny(tmp_path / "custom", model_type="my-custom-encoder",
                                 auto_map={"AutoModel": "modeling_custom.CustomModel"})
    (directory / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n", encoding="utf-8")
    with pytest.raises(PluginError, match="cannot load a transformers encoder"):
        create(make_entry(directory), None, {})


def test_directory_without_config_is_a_clear_error(tmp_path: Path, make_entry: Any) -> None:
    with pytest.raises(PluginError, match=r"has no config\.json"):
        create(make_entry(tmp_path), tmp_path, {})


def test_text_has_no_augmentation_and_says_so(tiny_dir: Path, make_entry: Any) -> None:
    entry = make_entry(tiny_dir)
    assert isinstance(create(entry, tiny_dir, {"augment": "none"}), HFEncoder)
    with pytest.raises(OptionError, match=r"--augment .light..*no text augmentation.*--augment none"):
        create(entry, tiny_dir, {"augment": "light"})
