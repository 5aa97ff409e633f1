"""Every metric Graftzoo reports, defined once: classification, token/entity F1, calibration, shift.

The engine's validation, ``graft evaluate`` (and its shift and bias report),
``graft rank`` and the benches all call these functions, so a number with one
name has one definition everywhere. In particular there is one macro-F1: the
mean F1 over the classes present in the true *or* the predicted labels
(scikit-learn's ``average="macro"``), so a class the model invents counts
against it.

Inputs are integer labels ``[N]`` and logits or probabilities ``[N, C]``;
numpy and torch are imported by the functions that use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from graftzoo.errors import PluginError

if TYPE_CHECKING:
    import torch


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """accuracy, loss (mean cross-entropy), n, macro_f1 and the confusion matrix (rows: true, cols: predicted)."""
    import torch

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


def macro_f1(confusion: Any) -> float:
    """Mean F1 over the classes present in the true or the predicted labels (NaN when there are none).

    ``confusion`` is ``[true][predicted]`` counts (a tensor, array or nested
    lists). For y=[0,0,1,1], y_pred=[0,2,1,1] this is (2/3 + 1 + 0) / 3 = 0.556.
    """
    import numpy as np

    m = np.asarray(confusion, dtype=np.float64)
    if m.size == 0:
        return float("nan")
    tp = np.diag(m)
    support_plus_predicted = m.sum(axis=1) + m.sum(axis=0)
    present = support_plus_predicted > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp / np.maximum(support_plus_predicted, 1)
    return float(f1[present].mean())


def entity_f1(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (exact span and type match, as seqeval)."""
    from graftzoo.train.tagging import entity_scores

    scores = entity_scores(true, pred)
    return {"entity_precision": scores["precision"], "entity_recall": scores["recall"], "entity_f1": scores["f1"]}


def token_metrics(per_word: Sequence[torch.Tensor], targets: Sequence[Sequence[int]],
                  classes: Sequence[str]) -> dict[str, Any]:
    """Word-level accuracy/loss/macro-F1 plus entity-level F1 (BIO tags).

    A backbone whose ``token_labels()`` does not mark exactly one position per
    word breaks the plugin contract: a ``PluginError`` says so.
    """
    import torch

    flat_logits = torch.cat(list(per_word)) if per_word else torch.zeros(0, len(classes))
    flat_targets = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    if flat_logits.shape[0] != flat_targets.shape[0]:
        raise PluginError(f"{flat_logits.shape[0]} word predictions for {flat_targets.shape[0]} word labels: "
                          "the backbone adapter's token_labels() does not mark exactly one position per word")
    metrics = classification_metrics(flat_logits, flat_targets, len(classes))
    true_tags = [[classes[t] for t in seq] for seq in targets]
    pred_tags = [[classes[int(i)] for i in w.argmax(-1)] for w in per_word]
    metrics.update(entity_f1(true_tags, pred_tags))
    metrics["n_sequences"] = len(targets)
    return metrics


def per_class_metrics(y_true: Any, y_pred: Any, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support for every class, in ``classes`` order.

    A class never predicted has precision 0 (not NaN) so that a collapsed
    model reads as bad rather than as missing; a class with no samples has
    recall 0 and support 0.
    """
    import numpy as np

    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    out = []
    for i, name in enumerate(classes):
        tp = int(((p == i) & (t == i)).sum())
        predicted = int((p == i).sum())
        support = int((t == i).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return out


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> list[list[int]]:
    """Counts ``[true][predicted]`` as nested lists (JSON-ready)."""
    import numpy as np

    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return [[int(v) for v in row] for row in m]


def calibration_bins(y_true: Any, probs: Any, n_bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each non-empty bin."""
    import numpy as np

    t = np.asarray(y_true, dtype=np.int64)
    pr = np.asarray(probs, dtype=np.float64)
    if pr.ndim != 2 or pr.shape[0] != t.shape[0]:
        raise ValueError(f"probs must be [N, C] with N={t.shape[0]}, got shape {pr.shape}")
    confidence = pr.max(axis=1)
    correct = (pr.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins so that confidence 1.0 falls in the last bin, 1/C in the first used one.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            bins.append({
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()),
                "accuracy": float(correct[mask].mean()),
            })
    return bins


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the sample-weighted mean |accuracy - confidence| over confidence bins.

    0 means that, among predictions made with confidence p, a fraction p is
    right; an overconfident model (high confidence, lower accuracy) scores high.
    """
    return ece_of_bins(calibration_bins(y_true, probs, n_bins))


def ece_of_bins(bins: Sequence[dict[str, float]]) -> float:
    """ECE from ``calibration_bins`` output (so a report that shows the bins needs no second pass)."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        raise ValueError("no predictions to calibrate")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total)


def domain_shift(source: Any, target: Any, seed: int = 0, permutations: int = 100) -> dict[str, Any]:
    """Domain-shift score between two feature sets (see ``graftzoo.diagnostics.shift.domain_shift``)."""
    from graftzoo.diagnostics.shift import domain_shift as shift

    result: dict[str, Any] = shift(source, target, seed=seed, permutations=permutations)
    return result
