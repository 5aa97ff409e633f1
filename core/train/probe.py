"""A converged linear probe on cached features: multinomial logistic regression fitted with L-BFGS.

This is the standard linear-probe protocol (CLIP, SimCLR, timm's and
scikit-learn's ``LogisticRegression``): features are centred, the L2
strength ``C`` is chosen by stratified k-fold cross-validation on the training
features only (the validation split stays an honest held-out estimate), and
the model is refitted on all training features with that ``C``. The objective
is scikit-learn's, ``0.5 ||W||^2 + C * sum_i w_i CE_i``, so ``C`` means what it
means there. The fitted weights are folded back through the centring
into the run's own ``nn.Linear``: the saved run is still backbone + torch head.

What keeps it fast, none of it an approximation of that objective:

* with fewer samples than feature dimensions the fit is solved in the samples'
  row space (thin SVD): an L2-regularised linear model's optimal weights lie
  in that span, so ``n x n`` coordinates give the same optimum as ``n x d``;
* the folds walk the ``C`` grid upwards, each fit warm-started from the same
  fold's solution at the previous ``C``, and the walk stops once the held-out
  score has not improved for ``PATIENCE`` grid points (it is near-unimodal in ``C``);
* a ``--refit`` on train+validation reuses the ``C`` chosen here (``fit_probe(c=...)``);
* a small problem runs on one thread: L-BFGS makes thousands of tiny vector operations (its two-loop
  recursion over 20 pairs), and on a busy 2-core machine waking a second thread for each cost 7x the time
  (165 s against 22 s for the demo's cross-validation).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: The L2 strengths tried, as scikit-learn's ``C`` (inverse regularisation), half a decade apart.
C_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: Grid points without a better held-out score after which the walk up the grid stops.
PATIENCE = 2
#: Cross-validation folds; from ``LARGE`` training samples on, ``LARGE_FOLDS`` (each held-out part still has
#: hundreds of samples, and each fold fits on most of the data).
FOLDS, LARGE, LARGE_FOLDS = 5, 1000, 3
#: L-BFGS stops when the largest gradient entry of the (normalised) objective falls below this: the final fit's,
#: and the cross-validation fits' (float32: their held-out log-loss agrees with float64's to about 1e-3).
TOLERANCE = 1e-6
CV_TOLERANCE = 1e-5
#: Multiply-adds of one objective evaluation (samples x dimensions x classes) below which the fit is single-threaded.
PARALLEL_WORK = 10**8


@dataclass
class ProbeFit:
    """The chosen ``C``, how it was chosen, and the fitted weights in feature space."""

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    c: float
    chosen_by: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # C -> held-out accuracy and log-loss
    iterations: int = 0  # of the final fit
    cv_fits: int = 0  # L-BFGS fits the cross-validation made (folds x grid points walked)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for graft.json."""
        return {"method": "lbfgs-logistic-regression", "C": self.c, "chosen_by": self.chosen_by,
                "cv": self.scores, "cv_folds": self.cv_fits // len(self.scores) if self.scores else 0,
                "cv_fits": self.cv_fits, "iterations": self.iterations}


def _targets(y: torch.Tensor, n_classes: int, label_smoothing: float, dtype: torch.dtype) -> torch.Tensor:
    onehot = nn.functional.one_hot(y, n_classes).to(dtype)
    return onehot * (1 - label_smoothing) + label_smoothing / n_classes


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float, *,
                 class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None,
                 max_iter: int = 500, tolerance: float = TOLERANCE) -> tuple[torch.Tensor, torch.Tensor, int]:
    """L-BFGS (strong Wolfe line search) to convergence on centred features ``x`` (in ``x``'s dtype).

    Minimises scikit-learn's objective divided by ``C * sum(sample weights)`` (the same minimiser,
    a well-scaled value), with its gradient written out (no autograd graph per step).
    Returns ``(weight [C, D], bias [C], iterations)``.
    """
    d = x.shape[1]
    w = init[0].to(x.dtype, copy=True) if init is not None else torch.zeros(n_classes, d, dtype=x.dtype)
    b = init[1].to(x.dtype, copy=True) if init is not None else torch.zeros(n_classes, dtype=x.dtype)
    sw = class_weight[y].to(x.dtype) if class_weight is not None else torch.ones(len(y), dtype=x.dtype)
    sw = (sw / sw.sum()).unsqueeze(1)
    target = _targets(y, n_classes, label_smoothing, x.dtype)
    penalty = 1.0 / (c * float(len(y)) if class_weight is None else c * float(class_weight[y].sum()))
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        logp = torch.log_softmax(torch.addmm(b, x, w.T), 1)
        loss = -(sw * target * logp).sum() + 0.5 * penalty * (w * w).sum()
        residual = sw * (logp.exp() - target)  # d loss / d logits
        w.grad = residual.T @ x + penalty * w
        b.grad = residual.sum(0)
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    return w, b, iterations


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


def row_space(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(coordinates [n, r], basis [r, d])`` of centred ``z`` in its row space when ``n < d``, else ``(z, None)``.

    ``z = coordinates @ basis`` with orthonormal basis rows, so a weight ``w'`` fitted on the coordinates is
    ``w' @ basis`` in feature space, with the same L2 norm and the same logits.
    """
    if z.shape[0] >= z.shape[1]:
        return z, None
    u, s, vh = torch.linalg.svd(z, full_matrices=False)
    r = max(1, int((s > s[0] * 1e-10).sum())) if len(s) and float(s[0]) > 0 else 1
    return u[:, :r] * s[:r], vh[:r]


@dataclass
class _Fold:
    """One cross-validation split: its training rows (float32), its held-out rows, its last solution."""

    x: torch.Tensor
    y: torch.Tensor
    held: list[int]
    warm: tuple[torch.Tensor, torch.Tensor] | None = None  # its solution at the previous C


def _folds(x: torch.Tensor, y: torch.Tensor, k: int, seed: int) -> list[_Fold]:
    parts = []
    for held in stratified_folds(y.tolist(), k, seed):
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        parts.append(_Fold(x[keep].float(), y[keep], held))
    return parts


def choose_c(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, grid: Sequence[float] = C_GRID,
             folds: int | None = None,
             seed: int = 0, class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
             patience: int = PATIENCE) -> tuple[float, dict[str, dict[str, float]], int]:
    """The ``C`` with the lowest held-out log-loss over stratified folds of (x, y), the scores, and the fits made.

    ``folds`` None: ``FOLDS``, or ``LARGE_FOLDS`` from ``LARGE`` samples on.
    The grid is walked upwards, each fold warm-started from its solution at the previous ``C``, and the walk
    stops ``patience`` points past the best so far. With fewer than two samples in the smallest class no
    folds can be made: ``C = 1`` (scikit-learn's default) is returned with empty scores.
    """
    counts = torch.bincount(y, minlength=n_classes)
    if folds is None:
        folds = FOLDS if len(y) < LARGE else LARGE_FOLDS
    k = min(folds, int(counts[counts > 0].min()))
    if k < 2:
        return 1.0, {}, 0
    parts = _folds(x, y, k, seed)
    scores: dict[str, dict[str, float]] = {}
    grid = sorted(grid)
    best = 0
    for i, c in enumerate(grid):
        logits = torch.empty(len(y), n_classes, dtype=torch.float64)
        for fold in parts:
            fold.warm = fit_logistic(fold.x, fold.y, n_classes, c, class_weight=class_weight,
                                     label_smoothing=label_smoothing, init=fold.warm, max_iter=200,
                                     tolerance=CV_TOLERANCE)[:2]
            logits[fold.held] = (x[fold.held] @ fold.warm[0].double().T + fold.warm[1].double())
        scores[f"{c:g}"] = {"log_loss": float(nn.functional.cross_entropy(logits, y)),
                            "accuracy": float((logits.argmax(1) == y).double().mean())}
        if scores[f"{c:g}"]["log_loss"] < scores[f"{grid[best]:g}"]["log_loss"]:
            best = i
        elif i - best >= patience:
            break
    return grid[best], scores, len(scores) * k


def fit_probe(features: torch.Tensor, targets: torch.Tensor, n_classes: int, *, c: float | None = None,
              chosen_by: str = "given", seed: int = 0, class_weight: torch.Tensor | None = None,
              label_smoothing: float = 0.0) -> ProbeFit:
    """Centre, choose ``C`` by cross-validation (unless given; ``chosen_by`` says where it came from), fit on all
    of ``features`` with it: first in float32, then polished in float64 to ``TOLERANCE``.

    The returned weight and bias act on the raw (uncentred) features.
    """
    with _threads_for(features.shape[0] * features.shape[1] * n_classes):
        return _fit_probe(features, targets, n_classes, c, chosen_by, seed=seed, class_weight=class_weight,
                          label_smoothing=label_smoothing)


@contextmanager
def _threads_for(work: int) -> Iterator[None]:
    """One torch thread while a problem of ``work`` multiply-adds per evaluation is fitted (see the module doc)."""
    before = torch.get_num_threads()
    if work < PARALLEL_WORK:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_probe(features: torch.Tensor, targets: torch.Tensor, n_classes: int, c: float | None, chosen_by: str, *,
               seed: int, class_weight: torch.Tensor | None, label_smoothing: float) -> ProbeFit:
    x = features.double()
    # Centred only, not standardised per dimension: with few samples per class a dimension that hardly varies
    # in training would be blown up (on few-shot digits that cost 3 points against scikit-learn on raw
    # features). Centring changes nothing but conditioning: the intercept is not penalised.
    mean = x.mean(0)
    q, basis = row_space(x - mean)
    y = targets.long()
    scores: dict[str, dict[str, float]] = {}
    fits = 0
    if c is None:
        c, scores, fits = choose_c(q, y, n_classes, seed=seed, class_weight=class_weight,
                                   label_smoothing=label_smoothing)
        chosen_by = "cross-validation" if scores else "default (too few samples per class to cross-validate)"
    options: dict[str, Any] = {"class_weight": class_weight, "label_smoothing": label_smoothing}
    rough = fit_logistic(q.float(), y, n_classes, c, tolerance=CV_TOLERANCE, **options)
    w, b, iterations = fit_logistic(q, y, n_classes, c, init=rough[:2], **options)
    weight = w if basis is None else w @ basis
    bias = b - weight @ mean
    return ProbeFit(weight.float(), bias.float(), c, chosen_by, scores, rough[2] + iterations, fits)


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
