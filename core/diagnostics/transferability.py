"""Transferability scores on frozen features: LogME, kNN and linear-probe accuracy.

These answer "which backbone should I start from?" before any fine-tuning:
each takes a feature matrix ``[N, D]`` (a backbone's pooled features of the
user's data) and integer labels ``[N]``, and returns a number where higher
means the features suit the task better.

LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for
Transfer Learning", ICML 2021) is the log marginal likelihood (evidence) of a
Bayesian linear regression from the features to each one-hot label column,
with the prior precision alpha and noise precision beta set by MacKay's
fixed-point iteration, divided by N and averaged over classes. It needs no
training and no hyper-parameters, and costs one SVD.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Guards the fixed-point updates against a zero denominator (perfectly fitted
# labels or all-zero features); the value of the LogME reference code.
_EPS = 1e-5


def _as_xy(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be [N] with N={x.shape[0]}, got shape {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    return x, y


def logme(features: Any, labels: Any, max_iter: int = 100, tol: float = 1e-3) -> float:
    """LogME score of ``features`` [N, D] for integer ``labels`` [N] (higher is better).

    Per class c, the one-hot column y_c is modelled as y = F w + noise with
    w ~ N(0, 1/alpha) and noise ~ N(0, 1/beta); alpha and beta maximise the
    evidence p(y | F, alpha, beta) by the fixed-point iteration
    gamma = sum_i beta s_i / (alpha + beta s_i), alpha = gamma / |m|^2,
    beta = (N - gamma) / |y - F m|^2, where s_i are the eigenvalues of F^T F
    and m the posterior mean. The score is the mean over classes of log
    evidence / N. Scores compare feature sets on the same data only.
    """
    import numpy as np

    x, y = _as_xy(features, labels)
    n, d = x.shape
    # One thin SVD serves every class: in the right singular basis every
    # quantity of the iteration is a sum over singular values.
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    sigma = s**2  # the non-zero part of F^T F's spectrum; the other d - r eigenvalues are 0
    evidences = [
        _class_evidence(sigma, u.T @ (y == cls).astype(np.float64), float((y == cls).sum()), n, d,
                        max_iter=max_iter, tol=tol)[0]
        for cls in np.unique(y)
    ]
    return float(np.mean(evidences))


def _class_evidence(
    sigma: np.ndarray, proj: np.ndarray, y_norm2: float, n: int, d: int, *, max_iter: int = 100, tol: float = 1e-3
) -> tuple[float, float, float]:
    """(log evidence / N, alpha, beta) for one target column y, given F's squared singular
    values ``sigma`` [r] and ``proj`` = U^T y [r]."""
    import numpy as np

    proj2 = proj**2
    # Part of y outside the column space of F: residual whatever w is.
    outside = max(y_norm2 - float(proj2.sum()), 0.0)

    def terms(t: float) -> tuple[float, float, float]:
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * proj2 / (sigma + t) ** 2).sum())  # |m|^2
        res2 = float((proj2 * (t / (sigma + t)) ** 2).sum()) + outside  # |y - F m|^2
        return gamma, m2, res2

    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma, m2, res2 = terms(t)
        alpha = gamma / (m2 + _EPS)
        beta = max(n - gamma, _EPS) / (res2 + _EPS)
        if abs(alpha / beta - t) / t <= tol:
            break
    _, m2, res2 = terms(alpha / beta)  # the evidence at the final alpha, beta
    log_det = float(np.log(alpha + beta * sigma).sum()) + (d - sigma.shape[0]) * np.log(alpha)
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * log_det
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * np.log(2 * np.pi)
    )
    return float(evidence) / n, alpha, beta


def _folds(labels: np.ndarray, folds: int) -> int:
    """Folds that stratified CV can use: at most the size of the smallest class, at least 2."""
    import numpy as np

    _, counts = np.unique(labels, return_counts=True)
    if counts.size < 2:
        raise ValueError("cross-validation needs at least 2 classes")
    usable = int(min(folds, counts.min()))
    if usable < 2:
        raise ValueError(f"the smallest class has {int(counts.min())} sample; cross-validation needs 2 per class")
    return usable


def knn_accuracy(features: Any, labels: Any, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Mean stratified k-fold accuracy of a cosine k-nearest-neighbour classifier."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _as_xy(features, labels)
    n_folds = _folds(y, folds)
    # Neighbours must come from the training folds only: k cannot exceed their size.
    k = max(1, min(k, len(y) - len(y) // n_folds - 1))
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine")
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def linear_probe_accuracy(features: Any, labels: Any, folds: int = 5, c: float = 1.0, seed: int = 0) -> float:
    """Mean stratified k-fold accuracy of a logistic-regression probe on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _as_xy(features, labels)
    # Scaling inside the pipeline so each fold's scaler sees its training part only.
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
    cv = StratifiedKFold(n_splits=_folds(y, folds), shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def encode_labels(labels: Sequence[Any]) -> tuple[list[int], list[str]]:
    """Class names -> (integer ids in sorted-name order, the sorted names)."""
    names = sorted({str(label) for label in labels})
    index = {name: i for i, name in enumerate(names)}
    return [index[str(label)] for label in labels], names
