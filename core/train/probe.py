"""A converged linear probe on cached features: multinomial logistic regression fitted with L-BFGS.

This is the standard linear-probe protocol (CLIP, SimCLR, timm's and
scikit-learn's ``LogisticRegression``): features are centred, the L2
strength ``C`` is chosen by stratified k-fold cross-validation on the training
features only (the validation split stays an honest held-out estimate), and
the model is refitted on all training features with that ``C``. The objective
is scikit-learn's, ``0.5 ||W||^2 + C * sum_i w_i CE_i``, so ``C`` means what it
means there. The fitted weights are folded back through the centring
into the run's own ``nn.Linear``: the saved run is still backbone + torch head.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: The L2 strengths tried, as scikit-learn's ``C`` (inverse regularisation).
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


@dataclass
class ProbeFit:
    """The chosen ``C``, how it was chosen, and the fitted weights in feature space."""

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    c: float
    chosen_by: str
    scores: dict[str, float] = field(default_factory=dict)  # C -> mean held-out log-loss of the folds
    iterations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for graft.json."""
        return {"method": "lbfgs-logistic-regression", "C": self.c, "chosen_by": self.chosen_by,
                "cv_log_loss": self.scores, "iterations": self.iterations}


def _objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, c: float, *,
               sample_weight: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    ce = nn.functional.cross_entropy(x @ w.T + b, y, reduction="none", label_smoothing=label_smoothing)
    # scikit-learn's objective divided by C * sum(weights): the same minimiser, a well-scaled value.
    return (ce * sample_weight).sum() / sample_weight.sum() + 0.5 * (w * w).sum() / (c * sample_weight.sum())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float, *,
                 class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None,
                 max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor, int]:
    """L-BFGS (strong Wolfe line search) to convergence on standardised float64 features ``x``.

    Returns ``(weight [C, D], bias [C], iterations)``.
    """
    d = x.shape[1]
    w = (init[0].clone() if init is not None else torch.zeros(n_classes, d, dtype=x.dtype)).requires_grad_(True)
    b = (init[1].clone() if init is not None else torch.zeros(n_classes, dtype=x.dtype)).requires_grad_(True)
    sw = class_weight[y].to(x.dtype) if class_weight is not None else torch.ones(len(y), dtype=x.dtype)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _objective(x, y, w, b, c, sample_weight=sw, label_smoothing=label_smoothing)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        opt.step(closure)  # type: ignore[no-untyped-call]
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    return w.detach(), b.detach(), iterations


def stratified_folds(y: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """``k`` folds, each class dealt round-robin after a seeded shuffle."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(y):
        by_class[int(label)].append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in sorted(by_class):
        idx = by_class[label]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[(offset + j) % k].append(i)
        offset += len(idx)
    return [sorted(f) for f in folds]


def choose_c(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, grid: Sequence[float] = C_GRID, folds: int = 5,
             seed: int = 0, class_weight: torch.Tensor | None = None,
             label_smoothing: float = 0.0) -> tuple[float, dict[str, float]]:
    """``C`` with the lowest mean held-out log-loss over stratified folds of (x, y).

    With fewer than two samples in the smallest class no folds can be made:
    ``C = 1`` (scikit-learn's default) is returned with empty scores.
    """
    counts = torch.bincount(y, minlength=n_classes)
    k = min(folds, int(counts[counts > 0].min()))
    if k < 2:
        return 1.0, {}
    parts = stratified_folds(y.tolist(), k, seed)
    scores: dict[str, float] = {}
    for c in grid:
        losses = []
        for held in parts:
            mask = torch.ones(len(y), dtype=torch.bool)
            mask[held] = False
            w, b, _ = fit_logistic(x[mask], y[mask], n_classes, c, class_weight=class_weight,
                                   label_smoothing=label_smoothing, max_iter=200)
            logits = x[~mask] @ w.T + b
            losses.append(float(nn.functional.cross_entropy(logits, y[~mask])))
        scores[f"{c:g}"] = sum(losses) / len(losses)
    best = min(scores, key=lambda key: scores[key])
    return float(best), scores


def fit_probe(features: torch.Tensor, targets: torch.Tensor, n_classes: int, *, c: float | None = None,
              seed: int = 0, class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> ProbeFit:
    """Standardise, choose ``C`` by cross-validation (unless given), refit on all of ``features``.

    The returned weight and bias act on the raw (unstandardised) features.
    """
    x = features.double()
    # Centred only, not standardised per dimension: with few samples per class a dimension that hardly varies
    # in training would be blown up (on few-shot digits that cost 3 points against scikit-learn on raw
    # features). Centring changes nothing but conditioning: the intercept is not penalised.
    mean = x.mean(0)
    std = torch.ones_like(mean)
    z = x - mean
    y = targets.long()
    if c is None:
        c, scores = choose_c(z, y, n_classes, seed=seed, class_weight=class_weight, label_smoothing=label_smoothing)
        chosen_by = "cross-validation" if scores else "default (too few samples per class to cross-validate)"
    else:
        scores, chosen_by = {}, "given"
    w, b, iterations = fit_logistic(z, y, n_classes, c, class_weight=class_weight, label_smoothing=label_smoothing)
    weight = w / std
    bias = b - (weight * mean).sum(1)
    return ProbeFit(weight.float(), bias.float(), c, chosen_by, scores, iterations)


def linear_layer(head: nn.Module) -> nn.Linear | None:
    """The head's only ``nn.Linear`` when the head is a linear probe (dropout allowed), else None."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    others = [m for m in head.modules() if m is not head and not isinstance(m, nn.Linear | nn.Dropout)]
    return linears[0] if len(linears) == 1 and not others else None


def load_into(layer: nn.Linear, fit: ProbeFit) -> None:
    """Copy the fitted weights into the run's linear head."""
    with torch.no_grad():
        layer.weight.copy_(fit.weight.to(layer.weight))
        layer.bias.copy_(fit.bias.to(layer.bias))
