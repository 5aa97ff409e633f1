"""Numerics of the transfer diagnostics on synthetic data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graftzoo.diagnostics.evaluation_report import evaluation_report, format_evaluation_report
from graftzoo.diagnostics.shift import domain_classifier_accuracy, domain_shift, mmd_rbf, shift_level
from graftzoo.diagnostics.transferability import _class_evidence, knn_accuracy, linear_probe_accuracy, logme
from graftzoo.metrics import calibration_bins, expected_calibration_error, per_class_metrics


def blobs(n: int = 300, d: int = 32, classes: int = 4, spread: float = 3.0, seed: int = 0) -> tuple[
        np.ndarray, np.ndarray]:
    """Gaussian class clusters; ``spread`` sets how far apart their means are."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, d)) * spread
    return centres[y] + rng.normal(size=(n, d)), y


# -- LogME ---------------------------------------------------------------------

def test_logme_ranks_informative_features_above_noise() -> None:
    x, y = blobs()
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert logme(x, y) > logme(noise, y) + 0.1


def test_logme_is_monotone_in_class_separation() -> None:
    scores = [logme(*blobs(spread=s)) for s in (0.0, 0.5, 1.0, 3.0)]
    assert scores == sorted(scores), scores


def test_logme_prefers_features_with_signal_among_distractors() -> None:
    # Same signal, padded with 200 pure-noise dimensions: evidence penalises the extra parameters.
    x, y = blobs(d=8)
    padded = np.hstack([x, np.random.default_rng(2).normal(size=(len(x), 200))])
    assert logme(x, y) > logme(padded, y)


@pytest.mark.parametrize("n,d", [(120, 20), (30, 60)])  # N > D and N < D (thin SVD, zero eigenvalues)
def test_logme_evidence_matches_direct_formula_at_a_maximum(n: int, d: int) -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(size=(n, d))
    y = (f[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    ev, alpha, beta = _class_evidence(s**2, u.T @ y, float(y @ y), n, d, max_iter=500, tol=1e-10)

    def direct(a: float, b: float) -> float:
        # log N(y | 0, I/b + F F^T / a): the evidence with w integrated out, no SVD tricks.
        cov = np.eye(n) / b + f @ f.T / a
        _, logdet = np.linalg.slogdet(cov)
        return float(-0.5 * (y @ np.linalg.solve(cov, y) + logdet + n * math.log(2 * math.pi)) / n)

    assert ev == pytest.approx(direct(alpha, beta), abs=1e-6)
    # The fixed point maximises the evidence over alpha and beta.
    for fa, fb in [(1.5, 1), (1 / 1.5, 1), (1, 1.5), (1, 1 / 1.5)]:
        assert direct(alpha * fa, beta * fb) < ev


def test_logme_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[N\]"):
        logme(np.zeros((4, 3)), [0, 1])


# -- kNN and linear probe ---------------------------------------------------------

def test_knn_and_probe_separate_signal_from_noise() -> None:
    x, y = blobs(spread=1.0)
    noise = np.random.default_rng(4).normal(size=x.shape)
    assert knn_accuracy(x, y) > 0.9
    assert linear_probe_accuracy(x, y) > 0.9
    # Chance is 0.25 with 4 classes; cross-validation keeps noise near it.
    assert knn_accuracy(noise, y) < 0.4
    assert linear_probe_accuracy(noise, y) < 0.4


def test_cv_adapts_folds_to_small_classes_and_refuses_singletons() -> None:
    x, y = blobs(n=12, classes=4)  # 3 per class -> 3 folds
    assert 0.0 <= knn_accuracy(x, y, k=5) <= 1.0
    with pytest.raises(ValueError, match="2 per class"):
        linear_probe_accuracy(x[:5], y[:5])


# -- calibration and per-class metrics ------------------------------------------------

def calibrated_toy(n: int, overconfident: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary predictions whose true accuracy at confidence c is c (or 0.5 when overconfident)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, size=n)
    pred = rng.integers(0, 2, size=n)
    right = rng.uniform(size=n) < (0.5 if overconfident else conf)
    y = np.where(right, pred, 1 - pred)
    if overconfident:
        conf = np.full(n, 0.99)
    probs = np.zeros((n, 2))
    probs[np.arange(n), pred] = conf
    probs[np.arange(n), 1 - pred] = 1 - conf
    return y, probs


def test_ece_near_zero_when_calibrated_and_high_when_overconfident() -> None:
    assert expected_calibration_error(*calibrated_toy(20000, overconfident=False)) < 0.02
    assert expected_calibration_error(*calibrated_toy(20000, overconfident=True)) > 0.4


def test_calibration_bins_cover_every_prediction_once() -> None:
    y, probs = calibrated_toy(1000, overconfident=False)
    probs[0] = [1.0, 0.0]
    bins = calibration_bins(y, probs, n_bins=10)
    assert sum(b["count"] for b in bins) == 1000
    assert bins[-1]["upper"] == 1.0 and all(b["lower"] <= b["confidence"] <= b["upper"] for b in bins)


def test_per_class_metrics_by_hand() -> None:
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 1]
    rows = {r["class"]: r for r in per_class_metrics(y_true, y_pred, ["a", "b", "c"])}
    assert rows["a"] == {"class": "a", "precision": 1.0, "recall": pytest.approx(2 / 3),
                         "f1": pytest.approx(0.8), "support": 3}
    assert rows["b"]["precision"] == pytest.approx(0.5) and rows["b"]["recall"] == 1.0
    assert rows["c"] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# -- domain shift ------------------------------------------------------------------

def test_shift_small_for_same_distribution_large_for_shifted() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 20)), rng.normal(size=(300, 20))
    shifted = rng.normal(size=(300, 20)) + 1.0
    same, moved = domain_shift(a, b, permutations=50), domain_shift(a, shifted, permutations=50)
    assert same["level"] == "small" and same["domain_accuracy"] < 0.6
    assert abs(same["mmd2"]) < 0.01 and same["mmd_p_value"] > 0.05
    assert moved["level"] == "large" and moved["domain_accuracy"] > 0.9
    assert moved["mmd2"] > 10 * max(abs(same["mmd2"]), 1e-3) and moved["mmd_p_value"] < 0.05
    assert "large shift" in moved["message"]


def test_mmd_grows_with_the_shift_and_domain_accuracy_follows() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(200, 10))
    base = rng.normal(size=(200, 10))
    mmds = [mmd_rbf(a, base + delta, bandwidth=3.0, permutations=0)[0] for delta in (0.0, 0.3, 1.0)]
    assert mmds == sorted(mmds)
    assert domain_classifier_accuracy(a, base + 0.3) < domain_classifier_accuracy(a, base + 1.0)


def test_shift_level_thresholds() -> None:
    assert [shift_level(v) for v in (0.5, 0.65, 0.95)] == ["small", "moderate", "large"]


# -- evaluation report ---------------------------------------------------------------

def test_evaluation_report_warns_on_shift_overconfidence_and_weak_class() -> None:
    rng = np.random.default_rng(7)
    n = 400
    y = np.arange(n) % 4
    pred = y.copy()
    pred[y == 3] = 0  # class 3 is never recognised
    probs = np.full((n, 4), 0.01 / 3)
    probs[np.arange(n), pred] = 0.99
    train_f = rng.normal(size=(300, 16))
    report = evaluation_report(y, probs, ["a", "b", "c", "d"], train_features=train_f,
                               eval_features=rng.normal(size=(300, 16)) + 2.0, shift_permutations=20)
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["per_class"][3]["recall"] == 0.0 and report["confusion"][3][0] == 100
    assert report["ece"] == pytest.approx(0.24, abs=1e-6)
    text = " ".join(report["warnings"])
    assert "overconfident" in text and "d (0%)" in text and "large shift" in text
    assert "domain shift: large" in format_evaluation_report(report)


def test_evaluation_report_quiet_when_all_is_well() -> None:
    rng = np.random.default_rng(8)
    y, probs = calibrated_toy(2000, overconfident=False)
    feats = rng.normal(size=(400, 8))
    report = evaluation_report(y, probs, ["no", "yes"], train_features=feats[:200], eval_features=feats[200:],
                               shift_permutations=0)
    assert report["warnings"] == [] and report["shift"]["level"] == "small"
    with pytest.raises(ValueError, match="probs"):
        evaluation_report(y, probs[:, :1], ["no", "yes"])


# -- one macro-F1 (regression: the engine and the evaluation report used to disagree) -----------------

def test_one_macro_f1_everywhere() -> None:
    import torch
    from sklearn.metrics import f1_score

    from graftzoo.metrics import classification_metrics, macro_f1

    y, pred = [0, 0, 1, 1], [0, 2, 1, 1]
    probs = np.full((4, 3), 0.1)
    probs[np.arange(4), pred] = 0.8
    engine = classification_metrics(torch.tensor(probs).log(), torch.tensor(y), 3)["macro_f1"]
    report = evaluation_report(y, probs, ["a", "b", "c"])["macro_f1"]
    reference = f1_score(y, pred, average="macro")  # classes present in truth or predictions
    assert engine == pytest.approx(5 / 9) and report == pytest.approx(5 / 9) and reference == pytest.approx(5 / 9)
    assert macro_f1([[2, 0, 0], [0, 2, 0], [0, 0, 0]]) == 1.0  # a class nobody has or predicts does not count
