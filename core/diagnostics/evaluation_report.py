"""The shift and bias report of ``graft evaluate``: per-class metrics, calibration, domain shift.

``evaluation_report`` takes what evaluation already has (labels, predicted
probabilities and, optionally, backbone features of the training and the
evaluation data) and returns one JSON-ready dict; ``format_evaluation_report``
turns it into lines for the console. The dict::

    {"n": int, "accuracy": float, "macro_f1": float,
     "per_class": [{"class", "precision", "recall", "f1", "support"}, ...],
     "confusion": [[int]] (true x predicted),
     "ece": float, "calibration": [{"lower", "upper", "count", "confidence", "accuracy"}, ...],
     "mean_confidence": float,
     "shift": None | {"domain_accuracy", "proxy_a_distance", "mmd2", "mmd_p_value",
                      "mmd_bandwidth", "level", "message", "n_source", "n_target"},
     "warnings": [str, ...]}   # plain-words problems; empty when none

``shift.level`` is "small", "moderate" or "large" (domain-classifier accuracy
< 0.6, < 0.8, >= 0.8); a "large" shift adds a warning. Every number comes from
``graftzoo.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: ECE above this is reported as a warning: confidences are off by more than
#: 10 points on average, so a user should not read them as probabilities.
ECE_WARNING = 0.10
#: A class whose recall falls this far below the overall accuracy is named in
#: a warning: the model is biased against it.
RECALL_GAP_WARNING = 0.20


def evaluation_report(
    y_true: Sequence[int] | Any,
    probs: Any,
    classes: Sequence[str],
    *,
    train_features: Any | None = None,
    eval_features: Any | None = None,
    n_bins: int = 15,
    seed: int = 0,
    shift_permutations: int = 100,
) -> dict[str, Any]:
    """Per-class metrics, calibration and domain shift for one evaluation.

    ``y_true`` are class ids ``[N]`` indexing ``classes``; ``probs`` the predicted
    probabilities ``[N, C]``. The shift section needs backbone features of (a
    sample of) the training data and of the evaluation data, from the same
    backbone; ``seed`` seeds it, ``shift_permutations`` is the MMD test's
    permutation count (0 skips the p-value); ``n_bins`` are the ECE bins.
    Returns the JSON-ready dict described in the module docstring.
    """
    import numpy as np

    from graftzoo.metrics import (
        calibration_bins,
        confusion_matrix,
        domain_shift,
        ece_of_bins,
        macro_f1,
        per_class_metrics,
    )

    t = np.asarray(y_true, dtype=np.int64)
    pr = np.asarray(probs, dtype=np.float64)
    if pr.ndim != 2 or pr.shape != (t.shape[0], len(classes)):
        raise ValueError(f"probs must be [N={t.shape[0]}, C={len(classes)}], got shape {pr.shape}")
    if t.size == 0:
        raise ValueError("no evaluation samples")
    pred = pr.argmax(axis=1)
    accuracy = float((pred == t).mean())
    per_class = per_class_metrics(t, pred, classes)
    confusion = confusion_matrix(t, pred, len(classes))
    bins = calibration_bins(t, pr, n_bins)
    ece = ece_of_bins(bins)
    confidence = float(pr.max(axis=1).mean())
    shift = None
    if train_features is not None and eval_features is not None:
        shift = domain_shift(train_features, eval_features, seed=seed, permutations=shift_permutations)
    return {
        "n": int(t.size),
        "accuracy": accuracy,
        "macro_f1": macro_f1(confusion),
        "per_class": per_class,
        "confusion": confusion,
        "ece": ece,
        "calibration": bins,
        "mean_confidence": confidence,
        "shift": shift,
        "warnings": _warnings(accuracy, ece, confidence, per_class, shift),
    }


def _warnings(accuracy: float, ece: float, confidence: float, per_class: Sequence[dict[str, Any]],
              shift: dict[str, Any] | None) -> list[str]:
    """Plain-words problems: poor calibration, classes recognised far less often, a large domain shift."""
    warnings: list[str] = []
    if ece > ECE_WARNING:
        direction = "overconfident" if confidence > accuracy else "underconfident"
        warnings.append(f"poorly calibrated (ECE {ece:.3f}): the model is {direction}, mean confidence "
                        f"{confidence:.1%} vs accuracy {accuracy:.1%}; do not read its scores as probabilities")
    weak = [c for c in per_class if c["support"] > 0 and c["recall"] < accuracy - RECALL_GAP_WARNING]
    if weak:
        names = ", ".join(f"{c['class']} ({c['recall']:.0%})" for c in weak)
        warnings.append(f"classes recognised far less often than average ({accuracy:.0%}): {names}; "
                        "check their training examples for too few or unrepresentative samples")
    if shift is not None and shift["level"] == "large":
        warnings.append(shift["message"])
    return warnings


def format_evaluation_report(report: dict[str, Any]) -> str:
    """Console lines for an ``evaluation_report`` dict: a per-class table, ECE, shift, warnings."""
    from graftzoo.tables import format_table

    rows = [[str(c["class"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
            for c in report["per_class"]]
    lines = [
        f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  n={report['n']}",
        format_table(["class", "precision", "recall", "f1", "support"], rows, max_width=200),
        f"calibration: ECE {report['ece']:.4f} (mean confidence {report['mean_confidence']:.4f})",
    ]
    shift = report.get("shift")
    if shift:
        lines.append(f"domain shift: {shift['level']} (domain classifier accuracy {shift['domain_accuracy']:.3f}, "
                     f"MMD² {shift['mmd2']:.4f}, p={shift['mmd_p_value']:.3f})")
    lines.extend(f"Warning: {w}" for w in report["warnings"])
    return "\n".join(lines)
