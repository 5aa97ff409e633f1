"""Transfer diagnostics: which model to start from, did transfer hold up, adapt to a new domain.

- ``transferability``: LogME, kNN and linear-probe accuracy on frozen features
  (``graft rank``).
- ``graftzoo.metrics`` (re-exported here): per-class precision/recall/F1,
  confusion matrix, expected calibration error.
- ``shift``: domain-shift score between two feature sets (domain classifier,
  MMD) with a plain-words level.
- ``evaluation_report``: ``evaluation_report``, the shift and bias report of ``graft evaluate``.
- ``adapt``: AdaBN and TENT on a torch model (``graft adapt``).
- ``rank``: scoring registry candidates on a dataset, with the engine's feature cache.

Importing this package is cheap; numpy, scikit-learn and torch are imported by
the functions that use them. The public functions are re-exported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "logme": "graftzoo.diagnostics.transferability",
    "knn_accuracy": "graftzoo.diagnostics.transferability",
    "linear_probe_accuracy": "graftzoo.diagnostics.transferability",
    "per_class_metrics": "graftzoo.metrics",
    "expected_calibration_error": "graftzoo.metrics",
    "calibration_bins": "graftzoo.metrics",
    "domain_shift": "graftzoo.diagnostics.shift",
    "domain_classifier_accuracy": "graftzoo.diagnostics.shift",
    "mmd_rbf": "graftzoo.diagnostics.shift",
    "evaluation_report": "graftzoo.diagnostics.evaluation_report",
    "format_evaluation_report": "graftzoo.diagnostics.evaluation_report",
    "adabn": "graftzoo.diagnostics.adapt",
    "tent": "graftzoo.diagnostics.adapt",
    "rank_models": "graftzoo.diagnostics.rank",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        return getattr(module, name)
    raise AttributeError(f"module 'graftzoo.diagnostics' has no attribute {name!r}")
