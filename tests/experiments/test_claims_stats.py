"""Verdict logic on synthetic metrics: clear win, clear loss, noise, no effect; the t distribution itself."""
import math
import random

import pytest

from archlab.experiments.stats import combine, decide, summarize, t_ppf, t_sf_two_sided, welch


def test_t_distribution_matches_tables():
    assert t_ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-5)
    assert t_ppf(0.975, 4) == pytest.approx(2.776445, abs=1e-5)
    assert t_ppf(0.975, 1e7) == pytest.approx(1.959964, abs=1e-4)
    assert t_sf_two_sided(2.0, 10) == pytest.approx(0.073388, abs=1e-5)
    assert t_sf_two_sided(0.0, 5) == pytest.approx(1.0)


def test_summary_and_welch():
    s = summarize([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.ci_lo == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    w = welch([2.0, 2.1, 1.9], [1.0, 1.1, 0.9])
    assert w.diff == pytest.approx(1.0) and w.ci_lo > 0 and w.p < 0.001
    exact = welch([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])  # deterministic metrics: the difference is exact
    assert (exact.ci_lo, exact.ci_hi, exact.p) == (0.5, 0.5, 0.0)


def test_clear_win_is_supported():
    # claim: the ablated variant has a higher (worse) loss than the baseline
    v = decide([2.31, 2.35, 2.29], [1.90, 1.93, 1.88], goal="min", expect="worse", min_effect=0.02)
    assert v.verdict == "supported" and v.d > 0.3


def test_clear_loss_is_contradicted():
    v = decide([1.50, 1.52, 1.49], [1.90, 1.93, 1.88], goal="min", expect="worse")
    assert v.verdict == "contradicted" and v.ci_hi < 0


def test_accuracy_goal_max_and_expect_better():
    # claim: variant is better (higher accuracy)
    assert decide([0.95, 0.96, 0.94], [0.5, 0.52, 0.49], goal="max", expect="better").verdict == "supported"
    assert decide([0.5, 0.52, 0.49], [0.95, 0.96, 0.94], goal="max", expect="better").verdict == "contradicted"


def test_noise_is_inconclusive():
    rng = random.Random(0)
    a = [1.0 + rng.gauss(0, 0.3) for _ in range(3)]
    b = [1.0 + rng.gauss(0, 0.3) for _ in range(3)]
    v = decide(a, b, min_effect=0.05)
    assert v.verdict == "inconclusive" and v.ci_lo < 0 < v.ci_hi


def test_tiny_significant_effect_below_min_effect():
    # CI confidently inside (-m, m): the claimed (meaningful) effect is absent -> contradicted
    v = decide([1.001, 1.0012, 1.0008], [1.0, 1.0002, 0.9998], min_effect=0.05)
    assert v.verdict == "contradicted" and "no effect" in v.reason
    # significant but smaller than m with a CI that still reaches m -> inconclusive
    v = decide([1.04, 1.02, 1.03], [1.0, 1.0, 1.0], min_effect=0.05, alpha=0.05)
    assert v.verdict == "inconclusive"


def test_relative_min_effect_and_missing_runs():
    v = decide([11.0, 11.1, 10.9], [10.0, 10.1, 9.9], min_effect=0.05, relative=True)
    assert v.min_effect == pytest.approx(0.5) and v.verdict == "supported"
    assert decide([], [1.0, 2.0]).verdict == "inconclusive"


def test_combine():
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["contradicted", "inconclusive"]) == "contradicted"
    assert combine(["supported", "contradicted"]) == "inconclusive"
    assert combine([]) == "inconclusive"
