"""A tiny word tagger backbone (hashed word + character embeddings, one context convolution) and NER data."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftzoo import hookimpl
from graftzoo.data import LabelledData
from graftzoo.plugins import get_plugins
from graftzoo.train.backbone import Backbone

MODEL_ID = "tinytagger.test"
PLUGIN = "graftzoo-test-tagger"
BUCKETS = 512


class TinyTagger(Backbone):
    modality = "text"
    feature_dim = 32
    supports_tokens = True

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(BUCKETS, 32, padding_idx=0)
        self.context = nn.Conv1d(32, 32, 3, padding=1)

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [("embed", self.embed), ("context", self.context)]

    def forward_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embed(batch["ids"])
        return x + torch.relu(self.context(x.transpose(1, 2))).transpose(1, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["mask"].unsqueeze(-1).float()
        return (self.forward_tokens(batch) * mask).sum(1) / mask.sum(1).clamp(min=1)

    def preprocessing(self) -> dict[str, Any]:
        return {"hash": "crc32", "buckets": BUCKETS}

    def collate(self, samples: list[Any], train: bool) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in samples)
        ids = torch.zeros(len(samples), width, dtype=torch.long)
        for i, words in enumerate(samples):
            for j, w in enumerate(words):
                ids[i, j] = 1 + zlib.crc32(w.lower().encode()) % (BUCKETS - 1)
        return {"ids": ids, "mask": (ids != 0).long()}

    def token_labels(self, batch: dict[str, torch.Tensor], word_labels: list[list[int]]) -> torch.Tensor:
        out = torch.full(batch["ids"].shape, -100, dtype=torch.long)
        for i, labels in enumerate(word_labels):
            out[i, : len(labels)] = torch.tensor(labels, dtype=torch.long)
        return out

    def lora_targets(self) -> list[str]:
        return ["context"]


def create(entry: Any, weights: Path | None, options: Mapping[str, Any]) -> TinyTagger:
    return TinyTagger()


PEOPLE = [["John", "Smith"], ["Mary"], ["Ana", "Lopez"], ["Wei"], ["Omar", "Haddad"], ["Liz"]]
PLACES = [["Paris"], ["New", "York"], ["Lagos"], ["Rio", "de", "Janeiro"], ["Oslo"], ["Cairo"]]
TEMPLATES = [["{P}", "lives", "in", "{L}"], ["{P}", "flew", "to", "{L}", "today"], ["yesterday", "{P}", "left", "{L}"],
             ["we", "met", "{P}", "near", "{L}"]]


def ner_data(n: int = 120, seed: int = 0) -> LabelledData:
    """Synthetic sentences with PER and LOC entities in BIO tags."""
    rng = random.Random(seed)
    samples: list[Any] = []
    labels: list[Any] = []
    for _ in range(n):
        words: list[str] = []
        tags: list[str] = []
        for slot in rng.choice(TEMPLATES):
            if slot in ("{P}", "{L}"):
                name = rng.choice(PEOPLE if slot == "{P}" else PLACES)
                kind = "PER" if slot == "{P}" else "LOC"
                words += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                words.append(slot)
                tags.append("O")
        samples.append(words)
        labels.append(tags)
    return LabelledData(samples, labels, name="tinyner", modality="text", task="token-classification")


class TaggerPlugin:
    def __init__(self, weights: Path) -> None:
        self.weights = weights

    @hookimpl
    def register_backbones(self, register: Callable[..., None]) -> None:
        register("tinytagger-test", create, modality="text")

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        register("tinyner", lambda location, **options: ner_data(), modality="text", named=True)

    @hookimpl
    def register_models(self, register: Callable[..., None]) -> None:
        import hashlib

        register({"id": MODEL_ID, "modality": "text", "backbone": "tinytagger-test",
                  "source": f"file://{self.weights}", "license": "MIT",
                  "sha256": hashlib.sha256(self.weights.read_bytes()).hexdigest(),
                  "tasks": ["token-classification"]})


def install(weights: Path) -> Callable[[], None]:
    get_plugins().add(TaggerPlugin(weights), PLUGIN)
    return lambda: get_plugins().remove(PLUGIN)
