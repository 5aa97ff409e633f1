"""Honest transfer verdicts: the gain of one arm over another with a bootstrap confidence interval.

Both arms are scored on the same validation samples, so the samples are
resampled in pairs (the paired bootstrap): the interval reflects how much the
gain would move with another validation set of the same size. A gain whose
interval contains 0, or one measured on too few samples, is "inconclusive"
rather than a positive or a NEGATIVE TRANSFER claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Below this many validation samples no verdict is given, whatever the interval says.
MIN_VAL_SAMPLES = 30


@dataclass(frozen=True)
class Gain:
    """Accuracy of both arms, their difference and its (1 - alpha) bootstrap interval."""

    ours: float
    theirs: float
    gain: float
    low: float
    high: float
    n: int
    verdict: str  # "positive", "negative" or "inconclusive"


def bootstrap_gain(correct_ours: Sequence[bool], correct_theirs: Sequence[bool], *, resamples: int = 2000,
                   alpha: float = 0.05, seed: int = 0) -> Gain:
    """Paired bootstrap of ``mean(ours) - mean(theirs)`` over the validation samples."""
    import numpy as np

    a = np.asarray(correct_ours, dtype=np.float64)
    b = np.asarray(correct_theirs, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"both arms need per-sample results on the same samples, got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        return Gain(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0, "inconclusive")
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boots = diff[idx].mean(1)
    low, high = (float(v) for v in np.quantile(boots, [alpha / 2, 1 - alpha / 2]))
    gain = float(diff.mean())
    if n < MIN_VAL_SAMPLES or low <= 0.0 <= high:
        verdict = "inconclusive"
    else:
        verdict = "positive" if low > 0 else "negative"
    return Gain(float(a.mean()), float(b.mean()), gain, low, high, n, verdict)


def describe(g: Gain, ours: str = "pretrained", theirs: str = "scratch") -> str:
    """One line for the console and the model card."""
    head = (f"{ours} {g.ours:.4f} vs {theirs} {g.theirs:.4f} validation accuracy: gain {g.gain:+.4f} "
            f"(95% bootstrap CI {g.low:+.4f} to {g.high:+.4f}, n={g.n})")
    if g.verdict == "positive":
        return head + f" -- transfer helps: {ours} beats {theirs}"
    if g.verdict == "negative":
        return head + (" -- NEGATIVE TRANSFER: the pretrained start hurt; try another model, another policy or "
                       "more data")
    why = (f"only {g.n} validation samples (need {MIN_VAL_SAMPLES}+)" if g.n < MIN_VAL_SAMPLES
           else "the interval contains 0")
    return head + f" -- inconclusive: {why}; use more validation data before concluding"
