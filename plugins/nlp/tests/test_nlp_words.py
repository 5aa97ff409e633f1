"""Word splitting, BIO decoding and entity-level scores (seqeval semantics)."""

from __future__ import annotations

import pytest

from graftzoo.train.tagging import Entity, bio_entities, entity_scores, entity_spans, format_entities, split_words


def test_split_words_keeps_offsets_and_conll_conventions() -> None:
    text = "Anna doesn't live in New York, she's @paul_w's #1 fan: state-of-the-art 3.5 http://x.io/a?b"
    words = split_words(text)
    assert all(text[w.start:w.end] == w.text for w in words)
    assert [w.text for w in words] == [
        "Anna", "does", "n't", "live", "in", "New", "York", ",", "she", "'s", "@paul_w", "'s", "#1", "fan", ":",
        "state-of-the-art", "3.5", "http://x.io/a?b"]


def test_bio_entities_follow_conlleval_chunking() -> None:
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"]
    assert bio_entities(tags) == [Entity("PER", 0, 2), Entity("LOC", 3, 5), Entity("LOC", 5, 6),
                                  Entity("ORG", 6, 7), Entity("MISC", 8, 9)]
    assert bio_entities(["S-PER", "B-LOC", "E-LOC", "O"]) == [Entity("PER", 0, 1), Entity("LOC", 1, 3)]
    assert bio_entities(["O", "O"]) == []


def test_entity_scores_need_exact_span_and_type() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]  # PER too short, ORG mistyped: 1 of 3 right
    scores = entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["per_type_f1"]["LOC"] == pytest.approx(2 / 3)
    assert entity_scores(gold, [["O"] * 4, ["O"] * 2])["f1"] == 0.0
    with pytest.raises(ValueError, match="sentence 1"):
        entity_scores(gold, [["O"] * 4, ["O"]])


def test_entity_spans_map_words_back_to_characters() -> None:
    text = "Anna lives in New York."
    words = split_words(text)
    tags = ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    spans = entity_spans(text, words, tags, scores=[0.9, 1, 1, 0.8, 0.6, 1])
    assert spans == [
        {"type": "PER", "text": "Anna", "start": 0, "end": 4, "words": [0, 1], "score": 0.9},
        {"type": "LOC", "text": "New York", "start": 14, "end": 22, "words": [3, 5], "score": 0.7},
    ]
    assert "[14:22] LOC" in format_entities(text, spans)
    assert format_entities(text, []) == "(no entities)"
