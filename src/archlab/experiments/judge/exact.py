"""The exact tests a verdict rests on, each matched to what a run's metric is (the spec's `rule.outcome`):

* continuous — the paired **sign-flip** (permutation) test on the per-seed differences δ_s: under "no effect" the
  arms are exchangeable within a seed, so each δ_s is as likely to have either sign; p is the share of the 2ⁿ
  sign patterns whose mean is at least as extreme as the observed one (exact, no normality assumed). TOST at ±m
  uses the same test on δ + m and δ − m. `sign_flip_p` enumerates the patterns with one matrix product (fast
  path); `sign_flip_p_reference` is scipy.stats.permutation_test (the reference it is tested against).
* solved — each run solved the task or not: **Fisher's exact test** on the 2×2 table of solved counts.
* time — steps to reach a level, censored at the budget: the **log-rank test** (scipy.stats.logrank).

Also the multiplicity corrections: Holm within a claim, Benjamini–Hochberg q-values across a sweep.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

ALTERNATIVES = ("two-sided", "greater", "less")
EXACT_MAX_N = 16  # 2^16 sign patterns: beyond that, a seeded Monte-Carlo sample of patterns
RESAMPLES = 2 ** 16
_TOL = 1e-12  # floating-point slack when comparing a pattern's mean with the observed one


@functools.lru_cache(maxsize=EXACT_MAX_N + 1)
def _signs(n: int) -> np.ndarray:
    """Every sign pattern of n seeds, (2ⁿ, n) of ±1 (n ≤ EXACT_MAX_N), or a fixed random sample of them."""
    if n <= EXACT_MAX_N:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
        return 1.0 - 2.0 * bits
    rng = np.random.default_rng(0)
    return rng.choice([-1.0, 1.0], size=(RESAMPLES, n))


def sign_flip_p(deltas: Sequence[float] | np.ndarray, alternative: str = "two-sided") -> np.ndarray | float:
    """Exact paired sign-flip p-value of mean(δ) against 0; `deltas` may be (n,) or a batch (k, n) of samples."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r}; expected one of {ALTERNATIVES}")
    x = np.asarray(deltas, dtype=np.float64)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    n = x.shape[1]
    if n == 0:
        return math.nan if one else np.full(x.shape[0], math.nan)
    obs = x.mean(axis=1, keepdims=True)  # (k, 1)
    null = x @ _signs(n).T / n  # (k, 2ⁿ): the mean under every sign pattern
    scale = _TOL * (1.0 + np.abs(x).max(axis=1, keepdims=True))
    if alternative == "greater":
        p = (null >= obs - scale).mean(axis=1)
    elif alternative == "less":
        p = (null <= obs + scale).mean(axis=1)
    else:
        p = (np.abs(null) >= np.abs(obs) - scale).mean(axis=1)
    return float(p[0]) if one else p


def sign_flip_p_reference(deltas: Sequence[float], alternative: str = "two-sided") -> float:
    """The same p-value from scipy.stats.permutation_test (exact for n ≤ 16): the reference for sign_flip_p."""
    x = np.asarray(deltas, dtype=np.float64)
    res = sps.permutation_test((x,), np.mean, permutation_type="samples", alternative=alternative,
                               n_resamples=np.inf if len(x) <= EXACT_MAX_N else RESAMPLES, random_state=0)
    return float(res.pvalue)


def tost_p(deltas: Sequence[float] | np.ndarray, m: float) -> np.ndarray | float:
    """Two one-sided sign-flip tests of equivalence within ±m: max of p(δ ≤ −m rejected) and p(δ ≥ m rejected)."""
    x = np.asarray(deltas, dtype=np.float64)
    return np.maximum(sign_flip_p(x + m, "greater"), sign_flip_p(x - m, "less"))


def noninferior_p(deltas: Sequence[float] | np.ndarray, m: float) -> np.ndarray | float:
    """One-sided sign-flip test of 'the variant is worse by less than m' (δ > 0 = worse): H0 δ ≥ m."""
    return sign_flip_p(np.asarray(deltas, dtype=np.float64) - m, "less")


def fisher_p(solved_a: int, n_a: int, solved_b: int, n_b: int) -> float:
    """Two-sided Fisher's exact test that two solved rates are equal."""
    table = [[solved_a, n_a - solved_a], [solved_b, n_b - solved_b]]
    return float(sps.fisher_exact(table, alternative="two-sided").pvalue)


def logrank_p(times_a: Sequence[float], times_b: Sequence[float], censored_at: float) -> float:
    """Two-sided log-rank test that two time-to-threshold distributions are equal; a time ≥ censored_at is a run
    that never reached the level within the budget (right-censored there)."""
    def data(times: Sequence[float]) -> sps.CensoredData:
        t = np.minimum(np.asarray(times, dtype=np.float64), censored_at)
        done = t < censored_at
        return sps.CensoredData(uncensored=t[done], right=t[~done])

    a, b = np.asarray(times_a, dtype=np.float64), np.asarray(times_b, dtype=np.float64)
    if not ((a < censored_at).any() or (b < censored_at).any()):
        return 1.0  # no run reached the level in either arm: nothing to compare
    return float(sps.logrank(data(a), data(b), alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    k, out, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        out[i] = running
    return out


def bh_qvalues(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values (same order as given; NaN stays NaN and is not counted as a test)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i], reverse=True)
    k, out, running = len(order), [math.nan] * len(pvalues), 1.0
    for j, i in enumerate(order):
        rank = k - j  # 1-based rank of p among the k tests
        running = min(running, pvalues[i] * k / rank)
        out[i] = min(1.0, running)
    return out
