"""How far apart two sets of backbone features are: domain shift between train and eval data.

Two measures, both on features ``[N, D]`` of the same backbone:

- the domain classifier: a cross-validated logistic regression that tells
  source from target samples. 0.5 accuracy means it cannot tell them apart;
  1.0 means every sample gives its origin away. Read as plain words by
  ``SHIFT_LEVELS``. Its proxy A-distance, 2 (1 - 2 err), is the quantity of
  Ben-David et al.'s domain-adaptation bound.
- MMD² (maximum mean discrepancy) with an RBF kernel whose bandwidth is the
  median pairwise distance, unbiased estimate, with a permutation p-value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Domain-classifier accuracy thresholds -> level. Below 0.6 the two sets are
#: close to indistinguishable (a held-out split of one dataset lands here);
#: from 0.8 most samples betray their origin, and accuracy measured on the
#: training data's distribution should not be trusted for the evaluation data.
SHIFT_LEVELS = ((0.8, "large"), (0.6, "moderate"), (0.0, "small"))


def _as_pair(source: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    a = np.asarray(source, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"source and target must be [N, D] with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 samples")
    return a, b


def _balanced(a: np.ndarray, b: np.ndarray, max_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size random subsets, so a classifier's accuracy is not inflated by the majority domain."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), max_samples)
    return a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]


def domain_classifier_accuracy(source: Any, target: Any, folds: int = 5, max_samples: int = 1000,
                               seed: int = 0) -> float:
    """Cross-validated accuracy of a logistic regression separating source from target features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _balanced(*_as_pair(source, target), max_samples, seed)
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    # Strong L2 (C=0.1): with D near N an unregularised probe memorises noise,
    # which would read as shift where there is none; CV keeps it honest anyway.
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    cv = StratifiedKFold(n_splits=min(folds, len(a)), shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def mmd_rbf(source: Any, target: Any, bandwidth: float | None = None, permutations: int = 100,
            max_samples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(MMD², permutation p-value, bandwidth) with k(x, y) = exp(-|x - y|² / (2 h²)).

    The unbiased estimate can be slightly negative for samples of one
    distribution. ``bandwidth`` None takes the median pairwise distance of the
    pooled samples. ``permutations`` 0 skips the test (p-value NaN).
    """
    import numpy as np

    a, b = _as_pair(source, target)
    rng = np.random.default_rng(seed)
    if len(a) > max_samples:
        a = a[rng.choice(len(a), max_samples, replace=False)]
    if len(b) > max_samples:
        b = b[rng.choice(len(b), max_samples, replace=False)]
    z = np.concatenate([a, b])
    sq = np.square(z).sum(axis=1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    if bandwidth is None:
        off_diag = dist2[np.triu_indices(len(z), k=1)]
        bandwidth = float(np.sqrt(np.median(off_diag))) or 1.0
    kernel = np.exp(-dist2 / (2.0 * bandwidth**2))
    n = len(a)

    def statistic(in_a: np.ndarray) -> float:
        kaa = kernel[np.ix_(in_a, in_a)]
        kbb = kernel[np.ix_(~in_a, ~in_a)]
        kab = kernel[np.ix_(in_a, ~in_a)]
        na, nb = kaa.shape[0], kbb.shape[0]
        return float((kaa.sum() - np.trace(kaa)) / (na * (na - 1))
                     + (kbb.sum() - np.trace(kbb)) / (nb * (nb - 1))
                     - 2.0 * kab.mean())

    mask = np.zeros(len(z), dtype=bool)
    mask[:n] = True
    observed = statistic(mask)
    if permutations <= 0:
        return observed, float("nan"), bandwidth
    exceed = sum(statistic(rng.permutation(mask)) >= observed for _ in range(permutations))
    return observed, (exceed + 1) / (permutations + 1), bandwidth


def shift_level(domain_accuracy: float) -> str:
    """'small', 'moderate' or 'large' for a domain-classifier accuracy (see ``SHIFT_LEVELS``)."""
    for threshold, level in SHIFT_LEVELS:
        if domain_accuracy >= threshold:
            return level
    return "small"


def domain_shift(source: Any, target: Any, seed: int = 0, permutations: int = 100,
                 max_samples: int = 1000) -> dict[str, Any]:
    """Domain-shift score between two feature sets, with a plain-words reading.

    Returns a JSON-ready dict: ``domain_accuracy`` (0.5 = same distribution,
    1.0 = fully separable), ``proxy_a_distance`` (0 .. 2), ``mmd2``,
    ``mmd_p_value``, ``level`` ('small' | 'moderate' | 'large'), ``message``
    (one sentence for a user) and the sample counts.
    """
    a, b = _as_pair(source, target)
    acc = domain_classifier_accuracy(a, b, max_samples=max_samples, seed=seed)
    mmd2, p_value, bandwidth = mmd_rbf(a, b, permutations=permutations, max_samples=max_samples, seed=seed)
    level = shift_level(acc)
    err = 1.0 - acc
    message = {
        "small": f"small shift: a classifier tells training from evaluation features apart only {acc:.0%} "
                 "of the time (50% = indistinguishable)",
        "moderate": f"moderate shift: a classifier tells training from evaluation features apart {acc:.0%} of "
                    "the time; expect somewhat lower accuracy than on data like the training set",
        "large": f"large shift: a classifier tells training from evaluation features apart {acc:.0%} of the "
                 "time; the evaluation data looks different from the training data, so accuracy may drop "
                 "(try 'graft adapt RUN DATA --method adabn|tent', or train on data like this)",
    }[level]
    return {
        "domain_accuracy": acc,
        "proxy_a_distance": max(0.0, 2.0 * (1.0 - 2.0 * err)),
        "mmd2": mmd2,
        "mmd_p_value": p_value,
        "mmd_bandwidth": bandwidth,
        "level": level,
        "message": message,
        "n_source": len(a),
        "n_target": len(b),
    }
