"""The exact tests against their references: the vectorised sign-flip test equals scipy.stats.permutation_test
(exact enumeration); Fisher, log-rank, Holm and Benjamini–Hochberg against scipy / hand computations."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from archlab.experiments.judge.exact import (
    bh_qvalues,
    fisher_p,
    logrank_p,
    noninferior_p,
    sign_flip_p,
    sign_flip_p_reference,
    tost_p,
)


@pytest.mark.parametrize("n", [2, 5, 6, 9, 12])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sign_flip_equals_scipy_permutation_test(n, alternative):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.3, -0.2):
        x = rng.normal(shift, 1.0, n)
        assert sign_flip_p(x, alternative) == pytest.approx(sign_flip_p_reference(x, alternative), abs=1e-12)
    ties = np.array([0.5, -0.5, 0.5, 0.0, 0.25, -0.25][:n])  # zeros and ties: the tolerance handles them
    assert sign_flip_p(ties, alternative) == pytest.approx(sign_flip_p_reference(ties, alternative), abs=1e-12)


def test_sign_flip_batches_equal_single_calls_and_the_smallest_p():
    x = np.random.default_rng(0).normal(0.1, 1, (7, 10))
    assert sign_flip_p(x).tolist() == [sign_flip_p(row) for row in x]
    assert sign_flip_p([1.0] * 6) == pytest.approx(2 / 64)  # the smallest two-sided p at n = 6
    assert math.isnan(sign_flip_p([]))
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_p([1.0], "bigger")


def test_tost_and_noninferiority_are_the_one_sided_tests_shifted_by_m():
    x = np.array([0.01, -0.02, 0.015, 0.0, -0.005, 0.01, 0.002, -0.01])
    assert tost_p(x, 0.05) == pytest.approx(max(sign_flip_p_reference(x + 0.05, "greater"),
                                                sign_flip_p_reference(x - 0.05, "less")))
    assert noninferior_p(x, 0.05) == pytest.approx(sign_flip_p_reference(x - 0.05, "less"))


def test_fisher_and_logrank_against_scipy():
    assert fisher_p(10, 10, 6, 10) == pytest.approx(sps.fisher_exact([[10, 0], [6, 4]]).pvalue)
    a, b = [10, 20, 30, 100, 100], [50, 60, 100, 100, 100]
    ref = sps.logrank(sps.CensoredData(uncensored=[10, 20, 30], right=[100, 100]),
                      sps.CensoredData(uncensored=[50, 60], right=[100, 100, 100])).pvalue
    assert logrank_p(a, b, 100) == pytest.approx(ref)
    assert logrank_p([100, 100], [100, 100], 100) == 1.0  # nobody reached the level


def test_benjamini_hochberg_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # sorted 0.005, 0.01, 0.03, 0.04 (k = 4): q = min over later ranks of p·k/rank
    assert bh_qvalues(p) == pytest.approx([0.02, 0.04, 0.04, 0.02, math.nan], nan_ok=True)
    assert bh_qvalues([]) == []
