"""Token classification on raw text: words with character spans, BIO entities, entity F1.

Pure Python, shared by the engine (entity-level metrics, ``graft predict`` on
NER runs) and text adapters (which align sub-words to these words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Close to the CoNLL / Penn Treebank conventions the NER sets use: clitics
# ("n't", "'s") and punctuation are words of their own, while @handles,
# #hashtags, URLs, numbers like 3.5 and hyphenated words stay whole.
_WORD_RE = re.compile(
    r"https?://\S+"  # URLs
    r"|[@#]\w+"  # handles and hashtags
    r"|\w+(?=n't\b)|n't\b"  # don't -> do n't
    r"|'(?:s|re|ve|ll|d|m)\b"  # clitics
    r"|\w+(?:[-.]\w+)*"  # words, 3.5, state-of-the-art
    r"|[^\w\s]",  # any other single symbol
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Word:
    """A word of a raw text with its character span ``text[start:end]``."""

    text: str
    start: int
    end: int


def split_words(text: str) -> list[Word]:
    """Cut raw text into words with their character offsets (CoNLL-like tokenisation)."""
    return [Word(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


@dataclass(frozen=True)
class Entity:
    """One entity: its type and the half-open word range ``[start, end)``."""

    type: str
    start: int
    end: int


def _split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') from 'B-PER'; ('O', '') for O; a bare type counts as I- (IO tagging)."""
    if tag == "O" or not tag:
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in ("B", "I", "E", "S"):
        return prefix, kind
    return "I", tag


def bio_entities(tags: Sequence[str]) -> list[Entity]:
    """Entities of a BIO (or IOBES) tag sequence, decoded as seqeval's default mode does.

    A chunk starts at ``B-``/``S-``, at an ``I-`` that follows ``O`` or another
    type (a lenient start, as conlleval counts it), and ends where the type
    changes or an ``O``, ``B-`` or ``S-`` comes.
    """
    entities: list[Entity] = []
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, tag_kind = _split_tag(tag)
        if kind is not None and (prefix in ("O", "B", "S") or tag_kind != kind):
            entities.append(Entity(kind, start, i))
            kind = None
        if prefix != "O" and (kind is None or prefix in ("B", "S")):
            kind, start = tag_kind, i
        if prefix in ("E", "S") and kind is not None:
            entities.append(Entity(kind, start, i + 1))
            kind = None
    return entities


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision, recall and F1 (micro, seqeval sense), plus per-type F1.

    An entity counts as correct only when its type and its exact word span
    match a gold entity.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp = n_gold = n_pred = 0
    per_type: dict[str, list[int]] = {}  # type -> [tp, gold, pred]
    for i, (g_tags, p_tags) in enumerate(zip(gold, pred, strict=True)):
        if len(g_tags) != len(p_tags):
            raise ValueError(f"sentence {i}: {len(g_tags)} gold tags but {len(p_tags)} predicted")
        g = set(bio_entities(g_tags))
        p = set(bio_entities(p_tags))
        tp += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
        for ent in g:
            per_type.setdefault(ent.type, [0, 0, 0])[1] += 1
        for ent in p:
            per_type.setdefault(ent.type, [0, 0, 0])[2] += 1
        for ent in g & p:
            per_type[ent.type][0] += 1
    return {
        "precision": tp / n_pred if n_pred else 0.0,
        "recall": tp / n_gold if n_gold else 0.0,
        "f1": _f1(tp, n_gold, n_pred),
        "n_gold": n_gold,
        "n_pred": n_pred,
        "per_type_f1": {t: _f1(c[0], c[1], c[2]) for t, c in sorted(per_type.items())},
    }


def _f1(tp: int, n_gold: int, n_pred: int) -> float:
    return 2 * tp / (n_gold + n_pred) if n_gold + n_pred else 0.0


def entity_spans(text: str, words: Sequence[Word], tags: Sequence[str],
                 scores: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Entities of a predicted sentence as JSON-ready dicts with character spans.

    ``words`` are ``split_words(text)``, ``tags`` one predicted tag per word
    (words the model could not see, past ``max_length``, should be tagged
    ``O``), ``scores`` optional per-word probabilities of the predicted tag
    (an entity's score is the mean over its words).
    """
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    out: list[dict[str, Any]] = []
    for ent in bio_entities(tags):
        start, end = words[ent.start].start, words[ent.end - 1].end
        item: dict[str, Any] = {"type": ent.type, "text": text[start:end], "start": start, "end": end,
                                "words": [ent.start, ent.end]}
        if scores is not None:
            item["score"] = round(sum(scores[ent.start:ent.end]) / (ent.end - ent.start), 4)
        out.append(item)
    return out


def format_entities(text: str, entities: Sequence[dict[str, Any]]) -> str:
    """A human-readable line per entity: ``[start:end] TYPE  text  (score)``."""
    if not entities:
        return "(no entities)"
    lines = []
    for ent in entities:
        score = f"  ({ent['score']:.2f})" if "score" in ent else ""
        lines.append(f"[{ent['start']}:{ent['end']}] {ent['type']:<12} {text[ent['start']:ent['end']]}{score}")
    return "\n".join(lines)


class _TokenRun(Protocol):
    classes: list[str]

    def predict(self, samples: Sequence[Any], batch_size: int = ...) -> Any: ...


def tag_texts(run: _TokenRun, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
    """Per text: ``{"text", "words", "tags", "entities"}`` with entities as character spans.

    ``run.predict`` on word lists gives per-word tag probabilities
    ``[N, W, C]``; each word takes its most probable tag and each entity the
    mean probability of its words as ``score``.
    """
    words = [split_words(text) for text in texts]
    with_words = [i for i, w in enumerate(words) if w]
    results: list[dict[str, Any]] = [{"text": t, "words": [], "tags": [], "entities": []} for t in texts]
    if not with_words:
        return results
    probs = run.predict([[w.text for w in words[i]] for i in with_words], batch_size)
    for row, i in enumerate(with_words):
        n = len(words[i])
        best = probs[row, :n].max(-1)
        tags = [run.classes[int(k)] for k in best.indices]
        scores = [float(v) for v in best.values]
        results[i].update(
            words=[{"text": w.text, "start": w.start, "end": w.end} for w in words[i]],
            tags=tags,
            entities=entity_spans(texts[i], words[i], tags, scores),
        )
    return results


def format_tagged(result: dict[str, Any]) -> str:
    """The text, then one line per entity (``[start:end] TYPE text (score)``), for people."""
    text = str(result["text"])
    return text + "\n" + "\n".join(
        "  " + line for line in format_entities(text, result["entities"]).splitlines())
