"""Statistics for claims: mean ± spread over seeds, Welch's t-test / CI of a difference, and the verdict rule.

The verdict rule (stated in every report). Let d be the difference of means oriented so that d > 0
is the direction the claim predicts (e.g. "the ablated variant has a higher loss"), and [lo, hi] its
(1 − α) Welch confidence interval; m is the minimum effect that counts (absolute, or a fraction of
|baseline mean|):

* **supported**    — lo > 0 and d ≥ m: a significant difference in the claimed direction, at least m large;
* **contradicted** — hi < 0 (significant difference the other way), or −m < lo and hi < m with m > 0
  (the CI excludes any effect as large as m: the claimed effect is absent);
* **inconclusive** — anything else (too few seeds, too much noise, or a significant but tiny effect).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

RULE_TEXT = (
    "d = difference of seed means, signed so that d > 0 is what the claim predicts; [lo, hi] = its "
    "(1-alpha) Welch confidence interval; m = minimum effect. supported: lo > 0 and d >= m. "
    "contradicted: hi < 0, or (m > 0 and -m < lo and hi < m: the claimed effect is excluded). "
    "inconclusive: otherwise."
)


# ---------------------------------------------------------------- Student t distribution (no scipy)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t)."""
    p = 0.5 * t_sf_two_sided(t, df)
    return 1.0 - p if t > 0 else p


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on the CDF)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile q={q} must be in (0, 1)")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# ---------------------------------------------------------------- summaries and tests


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
    """Mean, sample std and t confidence interval of the mean."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(xs) / n
    if n == 1:
        return Summary(1, mean, 0.0, mean, mean)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of mean(a) − mean(b)."""

    diff: float
    se: float
    df: float
    t: float
    p: float
    ci_lo: float
    ci_hi: float


def welch(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Welch:
    """Difference of means a − b, its (1-alpha) Welch CI and two-sided p-value."""
    sa, sb = summarize(a), summarize(b)
    if sa.n == 0 or sb.n == 0:
        return Welch(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = sa.mean - sb.mean
    va = sa.std**2 / sa.n
    vb = sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0.0:  # both groups constant (deterministic metric): the difference is exact
        p = 1.0 if diff == 0 else 0.0
        return Welch(diff, 0.0, math.inf, math.copysign(math.inf, diff) if diff else 0.0, p, diff, diff)
    if sa.n < 2 and sb.n < 2:
        return Welch(diff, math.inf, math.nan, 0.0, 1.0, -math.inf, math.inf)
    num = (va + vb) ** 2
    den = (va**2 / (sa.n - 1) if sa.n > 1 else 0.0) + (vb**2 / (sb.n - 1) if sb.n > 1 else 0.0)
    df = num / den if den > 0 else float(max(sa.n, sb.n) - 1)
    t = diff / se
    half = t_ppf(1 - alpha / 2, df) * se
    return Welch(diff, se, df, t, t_sf_two_sided(t, df), diff - half, diff + half)


@dataclass(frozen=True)
class Verdict:
    """A verdict on one comparison, with the numbers it rests on."""

    verdict: str  # supported | contradicted | inconclusive
    d: float  # difference of means, > 0 in the claimed direction
    ci_lo: float
    ci_hi: float
    p: float
    min_effect: float
    baseline: Summary
    variant: Summary
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def decide(variant: Sequence[float], baseline: Sequence[float], *, goal: str = "min", expect: str = "worse",
           alpha: float = 0.05, min_effect: float = 0.0, relative: bool = False) -> Verdict:
    """Verdict on 'variant is `expect` than baseline' for a metric to `goal` (min or max); rule in RULE_TEXT."""
    if goal not in ("min", "max"):
        raise ValueError(f"goal={goal!r} must be 'min' or 'max'")
    if expect not in ("better", "worse"):
        raise ValueError(f"expect={expect!r} must be 'better' or 'worse'")
    sv, sb = summarize(variant, alpha), summarize(baseline, alpha)
    w = welch(variant, baseline, alpha)
    # orient: d > 0 means "variant worse" for goal=min when diff > 0; flip for max, flip again for "better"
    sign = (1.0 if goal == "min" else -1.0) * (1.0 if expect == "worse" else -1.0)
    d, lo, hi = sign * w.diff, sign * w.ci_lo, sign * w.ci_hi
    if lo > hi:
        lo, hi = hi, lo
    m = abs(min_effect * sb.mean) if relative and not math.isnan(sb.mean) else abs(min_effect)
    if sv.n == 0 or sb.n == 0 or math.isnan(d):
        return Verdict("inconclusive", d, lo, hi, w.p, m, sb, sv, "no finished runs to compare")
    if lo > 0 and d >= m:
        v, why = "supported", f"CI [{lo:.4g}, {hi:.4g}] > 0 and d={d:.4g} >= m={m:.4g}"
    elif hi < 0:
        v, why = "contradicted", f"CI [{lo:.4g}, {hi:.4g}] < 0: significant effect opposite to the claim"
    elif m > 0 and lo > -m and hi < m:
        v, why = "contradicted", f"CI [{lo:.4g}, {hi:.4g}] inside (-m, m) with m={m:.4g}: no effect of that size"
    else:
        v = "inconclusive"
        why = (f"significant but d={d:.4g} < m={m:.4g}" if lo > 0 else
               f"CI [{lo:.4g}, {hi:.4g}] includes 0 (n={sv.n}+{sb.n} seeds)")
    return Verdict(v, d, lo, hi, w.p, m, sb, sv, why)


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its comparisons: all supported → supported; any contradicted and none
    supported → contradicted; otherwise (mixed or unclear) inconclusive."""
    vs = list(verdicts)
    if not vs:
        return "inconclusive"
    if all(v == "supported" for v in vs):
        return "supported"
    if any(v == "contradicted" for v in vs) and not any(v == "supported" for v in vs):
        return "contradicted"
    return "inconclusive"
