"""Classification and token-classification metrics (no sklearn needed at run time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """accuracy, loss (mean cross-entropy), n, macro_f1 and the confusion matrix (rows: true, cols: predicted)."""
    n = int(targets.numel())
    if n == 0:
        return {"accuracy": float("nan"), "loss": float("nan"), "n": 0, "macro_f1": float("nan"), "confusion": []}
    loss = float(torch.nn.functional.cross_entropy(logits.float(), targets))
    pred = logits.argmax(-1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((targets, pred), torch.ones_like(targets), accumulate=True)
    return {
        "accuracy": float((pred == targets).float().mean()),
        "loss": loss,
        "n": n,
        "macro_f1": macro_f1(confusion),
        "confusion": confusion.tolist(),
    }


def macro_f1(confusion: torch.Tensor) -> float:
    """Mean F1 over classes present in the true or predicted labels."""
    tp = confusion.diag().float()
    support = confusion.sum(1).float()
    predicted = confusion.sum(0).float()
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return float(f1[present].mean()) if bool(present.any()) else float("nan")


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, start, end) spans of a BIO/IOB2 tag sequence; a stray I- starts a new span."""
    spans: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, typ = tag.partition("-")
        if kind is not None and (prefix in ("O", "B") or typ != kind or not typ):
            spans.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and typ and kind is None:
            kind, start = typ, i
    return spans


def entity_f1(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (exact span and type match, as seqeval)."""
    tp = n_true = n_pred = 0
    for t, p in zip(true, pred, strict=True):
        ts, ps = entity_spans(t), entity_spans(p)
        tp += len(ts & ps)
        n_true += len(ts)
        n_pred += len(ps)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}
