"""NER prediction on raw text: words, tags and entities with character spans.

``graft predict RUN "some text"`` on a token-classification run must cut the
text into words exactly as the backbone aligns them, run the tagger, and map
the tags back to character spans. ``tag_texts`` does all three for a loaded
run (``graftzoo.train.run.load_run``), so the engine's predict command can
print entities without knowing anything about words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from graftzoo_nlp.words import entity_spans, format_entities, split_words


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
    return result["text"] + "\n" + "\n".join(
        "  " + line for line in format_entities(result["text"], result["entities"]).splitlines())
