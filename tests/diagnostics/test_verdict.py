"""The paired-bootstrap verdict: positive, negative and inconclusive gains."""

from __future__ import annotations

from graftzoo.diagnostics.verdict import MIN_VAL_SAMPLES, bootstrap_gain, describe


def test_clear_gain_on_enough_samples_is_positive_with_an_interval_around_it() -> None:
    ours = [1] * 90 + [0] * 10
    theirs = [1] * 50 + [0] * 50
    g = bootstrap_gain(ours, theirs)
    assert g.verdict == "positive" and g.gain == 0.4
    assert 0 < g.low < 0.4 < g.high
    assert "transfer helps" in describe(g)


def test_interval_containing_zero_is_inconclusive() -> None:
    ours = [1, 0] * 50
    theirs = [0, 1] * 25 + [1, 0] * 25
    g = bootstrap_gain(ours, theirs)
    assert g.low < 0 < g.high and g.verdict == "inconclusive"
    assert "interval contains 0" in describe(g)


def test_too_few_samples_is_inconclusive_even_with_a_large_gap() -> None:
    n = MIN_VAL_SAMPLES - 1
    g = bootstrap_gain([0] * n, [1] * n)
    assert g.gain == -1.0 and g.verdict == "inconclusive"
    assert "NEGATIVE" not in describe(g) and f"only {n} validation samples" in describe(g)
    assert bootstrap_gain([0] * 40, [1] * 40).verdict == "negative"
