"""Seed summaries use scipy's t distribution (the verdict rule itself is tested in test_verdict_rule.py)."""
import math

import pytest
from scipy import stats as sps

from archlab.experiments.judge.stats import summarize


def test_summary_matches_scipy():
    xs = [2.0, 2.1, 1.9, 2.3]
    s = summarize(xs)
    lo, hi = sps.t.interval(0.95, len(xs) - 1, loc=sps.tmean(xs), scale=sps.sem(xs))
    assert s.n == 4 and s.mean == pytest.approx(2.075) and s.std == pytest.approx(sps.tstd(xs))
    assert (s.ci_lo, s.ci_hi) == pytest.approx((lo, hi))


def test_summary_edge_cases():
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)
    one = summarize([1.5, float("nan"), None])
    assert one.n == 1 and one.mean == 1.5 and one.std == 0.0
    assert summarize([1.0, 2.0]).fmt(1) == "1.5 ± 0.7"
