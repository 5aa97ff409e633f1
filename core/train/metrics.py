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


def entity_f1(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (exact span and type match, as seqeval)."""
    from graftzoo.train.tagging import entity_scores

    scores = entity_scores(true, pred)
    return {"entity_precision": scores["precision"], "entity_recall": scores["recall"], "entity_f1": scores["f1"]}
