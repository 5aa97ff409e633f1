"""Classification metrics a user reads after evaluation: per class, and calibration.

Plain numpy, so they work on any modality's predictions. Inputs are integer
labels ``[N]`` and predicted class probabilities ``[N, C]`` (softmax outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
    bins = calibration_bins(y_true, probs, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        raise ValueError("no predictions to calibrate")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total)
