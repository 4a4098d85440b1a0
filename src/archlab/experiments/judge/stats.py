"""Summaries of a metric over seeds (mean ± sd and a t interval of the mean), with scipy's t distribution.

The verdict rule itself (paired test, TOST, gates, Holm) is archlab.experiments.judge.verdict.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps


@dataclass(frozen=True)
class Summary:
    """Mean ± sample standard deviation over n seeds, with a (1-alpha) t interval of the mean."""

    n: int
    mean: float
    std: float
    ci_lo: float
    ci_hi: float

    def fmt(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


def summarize(values: Sequence[float], alpha: float = 0.05) -> Summary:
    """Mean, sample std and t confidence interval of the mean (NaN and None are left out)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(xs) / n
    if n == 1:
        return Summary(1, mean, 0.0, mean, mean)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)
