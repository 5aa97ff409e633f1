"""Token classification end to end: per-word labels, token head, entity-level F1, predict and evaluate."""

from __future__ import annotations

from pathlib import Path

from graftzoo.metrics import entity_f1
from graftzoo.train.config import TrainConfig
from graftzoo.train.engine import train
from graftzoo.train.run import load_run
from graftzoo.train.tagging import Entity, bio_entities
from tests.train import tiny_tokens


def test_entity_spans_and_f1() -> None:
    assert bio_entities(["B-PER", "I-PER", "O", "B-LOC", "I-PER"]) == [
        Entity("PER", 0, 2), Entity("LOC", 3, 4), Entity("PER", 4, 5)]
    scores = entity_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert scores["entity_f1"] == 0.0 and scores["entity_recall"] == 0.0


def test_token_classification_trains_and_predicts(tiny_weights_dir: Path, no_plugins: None, tmp_path: Path) -> None:
    undo = tiny_tokens.install(tiny_weights_dir / "tinycnn.safetensors")
    try:
        cfg = TrainConfig(model=tiny_tokens.MODEL_ID, data="tinyner", policy="full", epochs=6, lr=0.05,
                          batch_size=16, pretrained=False)
        info = train(cfg, tmp_path / "ner", progress=False)
        assert info["task"] == "token-classification"
        assert info["final"]["entity_f1"] > 0.8, info["final"]
        run = load_run(tmp_path / "ner")
        assert run.predict_labels([["Mary", "lives", "in", "New", "York"]]) == [
            ["B-PER", "O", "O", "B-LOC", "I-LOC"]]
        probs = run.predict([["Mary", "left"], ["Liz"]])
        assert probs.shape == (2, 2, len(run.classes))
        data = tiny_tokens.ner_data(20, seed=5)
        metrics = run.evaluate(data.samples, data.labels)
        assert metrics["entity_f1"] > 0.8 and metrics["n_sequences"] == 20
    finally:
        undo()
