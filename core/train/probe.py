"""A converged linear probe on cached features: multinomial logistic regression fitted with L-BFGS.

This is the standard linear-probe protocol (CLIP, SimCLR, timm's and
scikit-learn's ``LogisticRegression``): features are centred, the L2
strength ``C`` is chosen by stratified k-fold cross-validation on the training
features only (the validation split stays an honest held-out estimate), and
the model is refitted on all training features with that ``C``. The objective
is scikit-learn's, ``0.5 ||W||^2 + C * sum_i w_i CE_i``, so ``C`` means what it
means there. The fitted weights are folded back through the centring
into the run's own ``nn.Linear``: the saved run is still backbone + torch head.

The features need not fit in memory (``graftzoo.train.rows``): the objective
and gradient of every L-BFGS evaluation, the centring statistics (one pass)
and the held-out scores are sums over chunks of rows read from the feature
cache, and a cross-validation fold is a mask over row positions, never a copy.
Only training features of at most ``IN_MEMORY_BYTES`` (as float64) are pulled
into memory, where the fast paths below need them.

How ``C`` is chosen from those scores (``--probe-rule``, recorded in graft.json
with the per-fold standard errors): ``lowest`` (the default), the ``C`` with the
lowest mean held-out log-loss; ``one-standard-error`` (Breiman et al.'s CART,
glmnet's ``lambda.1se``), the smallest ``C`` (the most regularised model) whose
mean held-out log-loss is within one standard error, across folds, of the
lowest; or ``accuracy``, the highest held-out accuracy (ties: the lower
log-loss). Measured with ``bench/transfer_quality.py`` (frozen probe, held-out
test sets, one run): the one-SE rule cost few-shot digits 1.3 points (C 3 ->
0.1, 0.8715 -> 0.8586: with 20 samples a fold the standard error is wide and
the rule over-regularises), left text unchanged (C 0.1) and did not move the
speaker-ID set (C 100 -> 30, 0.7656 both); ``accuracy`` cost digits 1.5 points
(C 0.03) and text 0.4 (C 0.03) and kept speaker ID at C 100. On speaker ID the
training takes are separable at every C >= 0.03 and the held-out loss falls to
the grid's end, so no rule on the training data can see the test takes' shift
(pitch, speed, noise). Hence ``lowest`` by default.

What keeps it fast, none of it an approximation of that objective:

* with fewer samples than feature dimensions, and features small enough to be
  held in memory, the fit is solved in the samples' row space (thin SVD): an
  L2-regularised linear model's optimal weights lie in that span, so ``n x n``
  coordinates give the same optimum as ``n x d``;
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

from graftzoo.train.rows import Rows, TensorRows

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
#: Training features up to this many bytes as float64 are held in memory (and, with fewer samples than
#: dimensions, solved in their row space); larger ones are streamed from the cache chunk by chunk. 4 MiB is
#: e.g. 400 samples of 1,280 dimensions or 1,300 of 384: about what the streamed path's own chunk buffers and
#: temporaries take, so memory stays flat across the threshold, while few-shot data (the probe's common case)
#: keeps its row-space solve.
IN_MEMORY_BYTES = 4 * 2**20
#: How ``C`` is chosen from the cross-validation scores (``--probe-rule``): see the module doc.
RULES = {"lowest": "the C with the lowest mean held-out log-loss",
         "one-standard-error": "the smallest C whose mean held-out log-loss over the folds is within one standard "
                               "error (across folds) of the lowest",
         "accuracy": "the C with the highest held-out accuracy, ties to the lowest held-out log-loss"}
RULE = "lowest"


@dataclass
class ProbeFit:
    """The chosen ``C``, how it was chosen, and the fitted weights in feature space."""

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    c: float
    chosen_by: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # C -> held-out log-loss (+ SE), accuracy
    iterations: int = 0  # of the final fit
    cv_fits: int = 0  # L-BFGS fits the cross-validation made (folds x grid points walked)
    features: str = ""  # how the fit saw the features: in memory, in their row space, or streamed
    rule: str = RULE  # how C was chosen from the scores

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for graft.json."""
        out = {"method": "lbfgs-logistic-regression", "C": self.c, "chosen_by": self.chosen_by,
               "cv": self.scores, "cv_folds": self.cv_fits // len(self.scores) if self.scores else 0,
               "cv_fits": self.cv_fits, "iterations": self.iterations, "features": self.features}
        if self.scores:
            out["rule"] = f"{self.rule}: {RULES[self.rule]}"
        return out


def _targets(y: torch.Tensor, n_classes: int, label_smoothing: float, dtype: torch.dtype) -> torch.Tensor:
    onehot = nn.functional.one_hot(y, n_classes).to(dtype)
    return onehot * (1 - label_smoothing) + label_smoothing / n_classes


@dataclass
class _Data:
    """The training rows as the fits see them: centred coordinates in memory, or rows streamed and centred
    chunk by chunk."""

    n: int
    dim: int
    memory: torch.Tensor | None = None  # [n, dim] centred, float64
    rows: Rows | None = None
    centre: torch.Tensor | None = None  # [dim] float64, subtracted from streamed rows

    def subset(self, members: torch.Tensor | None = None) -> _Subset:
        """The rows where ``members`` (bool [n]) is set; all when None."""
        return _Subset(self, members)


class _Subset:
    """Rows one fit sums over: their positions and, chunk by chunk, their centred values in a dtype."""

    def __init__(self, data: _Data, members: torch.Tensor | None) -> None:
        self.data, self.members = data, members
        self.positions = torch.arange(data.n) if members is None else members.nonzero().squeeze(1)
        self._copies: dict[torch.dtype, torch.Tensor] = {}

    def chunks(self, dtype: torch.dtype) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(positions, centred rows)`` in ``dtype``: one block for data in memory (copied once per dtype)."""
        data = self.data
        if data.memory is not None:
            if dtype not in self._copies:
                x = data.memory if self.members is None else data.memory[self.positions]
                self._copies[dtype] = x.to(dtype)
            yield self.positions, self._copies[dtype]
            return
        assert data.rows is not None and data.centre is not None
        centre = data.centre.to(dtype)
        for pos, x in data.rows.chunks():
            if self.members is not None:
                keep = self.members[pos]
                if not bool(keep.all()):
                    pos, x = pos[keep], x[keep]
            if len(pos):
                yield pos, x.to(dtype) - centre


def _in_memory(x: torch.Tensor) -> _Subset:
    return _Data(int(x.shape[0]), int(x.shape[1]), memory=x).subset()


def fit_logistic(x: torch.Tensor | _Subset, y: torch.Tensor, n_classes: int, c: float, *,
                 class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = 500,
                 tolerance: float = TOLERANCE, dtype: torch.dtype | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """L-BFGS (strong Wolfe line search) to convergence on centred features ``x`` (in ``x``'s dtype), or on a
    subset of the training rows (``y``: all rows' targets; in ``dtype``, default float64) summed chunk by chunk.

    Minimises scikit-learn's objective divided by ``C * sum(sample weights)`` (the same minimiser,
    a well-scaled value), with its gradient written out (no autograd graph per step).
    Returns ``(weight [C, D], bias [C], iterations)``.
    """
    if isinstance(x, torch.Tensor):
        dtype = x.dtype
        x = _in_memory(x)
    dtype = dtype or torch.float64
    d = x.data.dim
    w = init[0].to(dtype, copy=True) if init is not None else torch.zeros(n_classes, d, dtype=dtype)
    b = init[1].to(dtype, copy=True) if init is not None else torch.zeros(n_classes, dtype=dtype)
    weights = class_weight[y].to(dtype) if class_weight is not None else None
    total = float(len(x.positions)) if weights is None else float(weights[x.positions].sum())
    penalty = 1.0 / (c * total)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")
    subset = x

    def closure() -> torch.Tensor:
        loss, gw, gb = torch.zeros((), dtype=dtype), torch.zeros_like(w), torch.zeros_like(b)
        for pos, xs in subset.chunks(dtype):
            sw = (weights[pos] / total if weights is not None else torch.full((len(pos),), 1 / total, dtype=dtype))
            logp = torch.log_softmax(torch.addmm(b, xs, w.T), 1)
            target = _targets(y[pos], n_classes, label_smoothing, dtype)
            loss -= (sw.unsqueeze(1) * target * logp).sum()
            residual = sw.unsqueeze(1) * (logp.exp() - target)  # d loss / d logits
            gw.addmm_(residual.T, xs)
            gb += residual.sum(0)
        w.grad = gw + penalty * w
        b.grad = gb
        return loss + 0.5 * penalty * (w * w).sum()

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
    """One cross-validation split: a mask over the training rows, and its solution at the previous C."""

    train: _Subset
    warm: tuple[torch.Tensor, torch.Tensor] | None = None


def _held_out(data: _Data, y: torch.Tensor, fold_of: torch.Tensor, parts: list[_Fold]) -> dict[str, float]:
    """Held-out log-loss (pooled, and its standard error across folds) and accuracy: one pass over the rows,
    each row scored by the fold that held it out."""
    k = len(parts)
    loss, correct, count = (torch.zeros(k, dtype=torch.float64) for _ in range(3))
    for pos, x in data.subset().chunks(torch.float64):
        owner = fold_of[pos]
        for i, fold in enumerate(parts):
            sel = owner == i
            if not bool(sel.any()):
                continue
            assert fold.warm is not None
            logits = x[sel] @ fold.warm[0].double().T + fold.warm[1].double()
            yy = y[pos[sel]]
            loss[i] += nn.functional.cross_entropy(logits, yy, reduction="sum")
            correct[i] += (logits.argmax(1) == yy).sum()
            count[i] += len(yy)
    per_fold = loss / count
    return {"log_loss": float(loss.sum() / count.sum()),
            "log_loss_se": float(per_fold.std() / k ** 0.5) if k > 1 else 0.0,
            "accuracy": float(correct.sum() / count.sum())}


def choose_c(x: torch.Tensor | _Data, y: torch.Tensor, n_classes: int, *, grid: Sequence[float] = C_GRID,
             folds: int | None = None, groups: torch.Tensor | None = None,
             seed: int = 0, class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
             patience: int = PATIENCE, rule: str = RULE) -> tuple[float, dict[str, dict[str, float]], int]:
    """The ``C`` chosen by ``rule`` from the held-out log-loss over stratified folds of (x, y), the scores, and
    the fits made. ``x``: centred features, or the training rows as ``fit_probe`` streams them.

    ``folds`` None: ``FOLDS``, or ``LARGE_FOLDS`` from ``LARGE`` samples on. ``groups``: the sample each row
    was made from (``0..n-1``), when rows are augmented views of samples: a sample's rows are held out
    together (grouped k-fold), else a view of a held-out sample would sit in the fitted part and every C would
    look perfect. The grid is walked upwards, each fold warm-started from its solution at the previous ``C``,
    and the walk stops ``patience`` points past the lowest log-loss so far. With fewer than two samples in the
    smallest class no folds can be made: ``C = 1`` (scikit-learn's default) is returned with empty scores.
    """
    data = x if isinstance(x, _Data) else _Data(int(x.shape[0]), int(x.shape[1]), memory=x)
    fold_of = _assign_folds(y, n_classes, folds, groups, seed)
    if fold_of is None:
        return 1.0, {}, 0
    k = int(fold_of.max()) + 1
    parts = [_Fold(data.subset(fold_of != i)) for i in range(k)]
    scores: dict[str, dict[str, float]] = {}
    grid = sorted(grid)
    best = 0
    for i, c in enumerate(grid):
        for fold in parts:
            fold.warm = fit_logistic(fold.train, y, n_classes, c, class_weight=class_weight,
                                     label_smoothing=label_smoothing, init=fold.warm, max_iter=200,
                                     tolerance=CV_TOLERANCE, dtype=torch.float32)[:2]
        scores[f"{c:g}"] = _held_out(data, y, fold_of, parts)
        if scores[f"{c:g}"]["log_loss"] < scores[f"{grid[best]:g}"]["log_loss"]:
            best = i
        elif i - best >= patience:
            break
    return grid[pick(scores, best, rule)], scores, len(scores) * k


def _assign_folds(y: torch.Tensor, n_classes: int, folds: int | None, groups: torch.Tensor | None,
                  seed: int) -> torch.Tensor | None:
    """Each row's cross-validation fold (stratified by class, whole groups at a time), or None when the
    smallest class has fewer than two samples."""
    if groups is None:
        groups = torch.arange(len(y))
    size = int(groups.max()) + 1 if len(groups) else 0
    sample_y = torch.zeros(size, dtype=y.dtype).scatter_(0, groups, y)  # a sample's rows share its label
    counts = torch.bincount(sample_y, minlength=n_classes)
    if folds is None:
        folds = FOLDS if len(sample_y) < LARGE else LARGE_FOLDS
    k = min(folds, int(counts[counts > 0].min())) if len(sample_y) else 0
    if k < 2:
        return None
    sample_fold = torch.empty(len(sample_y), dtype=torch.long)
    for i, held in enumerate(stratified_folds(sample_y.tolist(), k, seed)):
        sample_fold[held] = i
    return sample_fold[groups]


def pick(scores: dict[str, dict[str, float]], best: int, rule: str = RULE) -> int:
    """The grid index ``rule`` chooses, given the scores of the grid's first points (ascending ``C``) and the
    index of the lowest log-loss."""
    if rule == "lowest":
        return best
    walked = list(scores.values())
    if rule == "accuracy":
        return max(range(len(walked)), key=lambda i: (walked[i]["accuracy"], -walked[i]["log_loss"]))
    if rule != "one-standard-error":
        raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
    bound = walked[best]["log_loss"] + walked[best]["log_loss_se"]
    return next(i for i, s in enumerate(walked) if s["log_loss"] <= bound)


def fit_probe(features: torch.Tensor | Rows, targets: torch.Tensor, n_classes: int, *, c: float | None = None,
              chosen_by: str = "given", seed: int = 0, class_weight: torch.Tensor | None = None,
              label_smoothing: float = 0.0, rule: str = RULE, groups: torch.Tensor | None = None) -> ProbeFit:
    """Centre, choose ``C`` by cross-validation (unless given; ``chosen_by`` says where it came from), fit on all
    of ``features`` with it: first in float32, then polished in float64 to ``TOLERANCE``.

    ``features``: a tensor, or rows read chunk by chunk (``graftzoo.train.rows``). The returned weight and bias
    act on the raw (uncentred) features. ``rule``: how cross-validation picks ``C`` (``RULES``); ``groups``: the
    sample each row was made from, when rows are augmented views (``choose_c``).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: one of {', '.join(RULES)}")
    rows = features if isinstance(features, Rows) else TensorRows(features)
    with _threads_for(rows.n * rows.dim * n_classes):
        return _fit_probe(rows, targets, n_classes, c, chosen_by, seed=seed, class_weight=class_weight,
                          label_smoothing=label_smoothing, rule=rule, groups=groups)


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


def _prepare(rows: Rows) -> tuple[_Data, torch.Tensor, torch.Tensor | None, str]:
    """The fits' view of ``rows``: (data, mean, row-space basis or None, how the features are held)."""
    total = torch.zeros(rows.dim, dtype=torch.float64)
    for _, x in rows.chunks():  # centring statistics: one streamed pass
        total += x.double().sum(0)
    mean = total / max(1, rows.n)
    # Centred only, not standardised per dimension: with few samples per class a dimension that hardly varies
    # in training would be blown up (on few-shot digits that cost 3 points against scikit-learn on raw
    # features). Centring changes nothing but conditioning: the intercept is not penalised.
    if rows.n * rows.dim * 8 > IN_MEMORY_BYTES:
        return (_Data(rows.n, rows.dim, rows=rows, centre=mean), mean, None,
                f"streamed from the feature cache in chunks of {rows.chunk_rows()} rows")
    q, basis = row_space(rows.tensor().double() - mean)
    how = "in memory" if basis is None else f"in memory, solved in the {q.shape[1]}-dimensional row space"
    return _Data(q.shape[0], q.shape[1], memory=q), mean, basis, how


def _fit_probe(rows: Rows, targets: torch.Tensor, n_classes: int, c: float | None, chosen_by: str, *,
               seed: int, class_weight: torch.Tensor | None, label_smoothing: float, rule: str,
               groups: torch.Tensor | None) -> ProbeFit:
    data, mean, basis, how = _prepare(rows)
    y = targets.long()
    scores: dict[str, dict[str, float]] = {}
    fits = 0
    if c is None:
        c, scores, fits = choose_c(data, y, n_classes, seed=seed, class_weight=class_weight,
                                   label_smoothing=label_smoothing, rule=rule, groups=groups)
        chosen_by = "cross-validation" if scores else "default (too few samples per class to cross-validate)"
    options: dict[str, Any] = {"class_weight": class_weight, "label_smoothing": label_smoothing}
    every = data.subset()
    rough = fit_logistic(every, y, n_classes, c, tolerance=CV_TOLERANCE, dtype=torch.float32, **options)
    w, b, iterations = fit_logistic(every, y, n_classes, c, init=rough[:2], dtype=torch.float64, **options)
    weight = w if basis is None else w @ basis
    bias = b - weight @ mean
    return ProbeFit(weight.float(), bias.float(), c, chosen_by, scores, rough[2] + iterations, fits, how, rule)


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
