"""Transfer diagnostics: which model to start from, did transfer hold up, adapt to a new domain.

- ``transferability``: LogME, kNN and linear-probe accuracy on frozen features
  (``graft rank``).
- ``metrics``: per-class precision/recall/F1, confusion matrix, expected
  calibration error.
- ``shift``: domain-shift score between two feature sets (domain classifier,
  MMD) with a plain-words level.
- ``report``: ``evaluation_report``, the shift and bias report of ``graft evaluate``.
- ``adapt``: AdaBN and TENT on a torch model (``graft adapt``).
- ``rank``: scoring registry candidates on a dataset, with the engine's feature cache.

Importing this package is cheap; numpy, scikit-learn and torch are imported by
the functions that use them. The public functions are re-exported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "logme": "transferability",
    "knn_accuracy": "transferability",
    "linear_probe_accuracy": "transferability",
    "per_class_metrics": "metrics",
    "expected_calibration_error": "metrics",
    "calibration_bins": "metrics",
    "domain_shift": "shift",
    "domain_classifier_accuracy": "shift",
    "mmd_rbf": "shift",
    "evaluation_report": "report",
    "format_evaluation_report": "report",
    "adabn": "adapt",
    "tent": "adapt",
    "rank_models": "rank",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"graftzoo.diagnostics.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'graftzoo.diagnostics' has no attribute {name!r}")
