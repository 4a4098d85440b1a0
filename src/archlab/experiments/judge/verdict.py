"""The verdict rule for a claim's comparisons: paired over seeds, gated, equivalence-tested, Holm-corrected.

The arms of a comparison share seed, data order and evaluation split, so the unit of evidence is the
*per-seed difference* δ_s = variant_s − baseline_s, oriented so that δ > 0 is what the claim predicts.
With n paired seeds, d = mean(δ), s = sd(δ):

* **gates first** (per seed, per arm): an arm "learned" when its metric is past both the task's chance
  level and its plateau (e.g. MQAR's 1/P value-set plateau) by the stated margin; an arm is "at ceiling"
  when it reaches the task's ceiling. The arm a verdict says is better must have learned in every seed;
  "no effect" needs both arms learned and not both at ceiling. Zero variance is never evidence.
* **supported** — paired t-test p (Holm-adjusted across the claim's comparisons) < α and d ≥ m;
* **contradicted: opposite effect** — p_adj < α with d < 0;
* **contradicted: no effect** — two one-sided tests (TOST) at ±m reject both "δ ≤ −m" and "δ ≥ m"
  (p_tost, Holm-adjusted, < α): the claimed effect of at least m is excluded;
* **inconclusive** — anything else; labelled *underpowered* when the minimum detectable effect at 80 %
  power, (t₁₋α/₂ + t₀.₈)·s/√n, exceeds m (so neither a support nor a "no effect" could be expected).

m (the minimum effect), the metric and the task are fixed in the claim's spec before its results are seen.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from scipy import stats as sps

from archlab.experiments.spec.rule import Gate

RULE_TEXT = (
    "paired over seeds: delta_s = variant_s - baseline_s, signed so that delta > 0 is what the claim predicts; "
    "d = mean(delta). Gates first: the arm found better must have learned (past chance and plateau) in every seed; "
    "'no effect' needs both arms learned and not both at ceiling; zero variance is no evidence. "
    "supported: paired t-test p (Holm-adjusted) < alpha and d >= m. contradicted (opposite): p_adj < alpha, d < 0. "
    "contradicted (no effect): TOST at +-m, p_adj < alpha. inconclusive: otherwise (underpowered when the "
    "minimum detectable effect at 80% power exceeds m). A claim: supported when every comparison is; "
    "contradicted when one is and none is supported; mixed when some are supported and some contradicted."
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_VERDICT = "supported", "contradicted", "inconclusive", "no verdict"
MIXED = "mixed"  # a claim with several comparisons: some supported, some contradicted


@dataclass(frozen=True)
class PairedVerdict:
    """A verdict on one comparison with every number it rests on."""

    verdict: str  # supported | contradicted | inconclusive | no verdict
    label: str  # e.g. "contradicted: no effect", "inconclusive (underpowered)"
    n: int  # paired seeds
    d: float  # mean paired difference, > 0 in the claimed direction
    sd: float
    ci_lo: float
    ci_hi: float
    p: float  # paired t-test, two-sided, unadjusted
    p_tost: float
    p_adj: float = math.nan
    p_tost_adj: float = math.nan
    mde: float = math.nan  # minimum detectable effect at 80 % power
    min_effect: float = 0.0
    underpowered: bool = False
    gates: dict = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def paired(variant: Mapping, baseline: Mapping) -> tuple[list, list[float], list[float]]:
    """The seeds present (and finite) in both arms, with their values in seed order."""
    seeds = sorted(s for s in variant if s in baseline and _finite(variant[s]) and _finite(baseline[s]))
    return seeds, [float(variant[s]) for s in seeds], [float(baseline[s]) for s in seeds]


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def mde_paired(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired t-test detects with the given power (normal-shift
    approximation with t quantiles): (t_{1-α/2,n-1} + t_{power,n-1}) · sd / √n."""
    if n < 2:
        return math.inf
    return float((sps.t.ppf(1 - alpha / 2, n - 1) + sps.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    k, out, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        out[i] = running
    return out


def _tests(deltas: list[float], m: float, alpha: float) -> tuple[float, float, float, float, float, float]:
    """d, sd, CI, paired t-test p and TOST p for the per-seed differences."""
    n = len(deltas)
    d = sum(deltas) / n
    sd = math.sqrt(sum((x - d) ** 2 for x in deltas) / (n - 1)) if n > 1 else math.nan
    if n < 2 or sd == 0.0:
        return d, sd, -math.inf, math.inf, math.nan, math.nan
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * se
    p = float(sps.ttest_1samp(deltas, 0.0).pvalue)
    if m > 0:  # TOST: H0 δ <= -m (reject when d is well above -m) and H0 δ >= m (reject when d is well below m)
        p_low = float(sps.t.sf((d + m) / se, n - 1))
        p_high = float(sps.t.cdf((d - m) / se, n - 1))
        p_tost = max(p_low, p_high)
    else:
        p_tost = math.nan
    return d, sd, d - half, d + half, p, p_tost


def _gate_report(gate: Gate | None, values: list[float]) -> dict:
    if gate is None:
        return {"learned": [True] * len(values), "ceiling": [False] * len(values)}
    return {"learned": [gate.learned(v) for v in values], "ceiling": [gate.at_ceiling(v) for v in values],
            "level": gate.learned_level, "chance": gate.chance, "plateau": gate.plateau, "ceiling_level": gate.ceiling}


def decide_paired(variant: Mapping, baseline: Mapping, *, goal: str = "min", expect: str = "worse",
                  min_effect: float = 0.0, relative: bool = False, alpha: float = 0.05,
                  gate: Gate | None = None) -> PairedVerdict:
    """Unadjusted verdict on 'variant is `expect` than baseline' from {seed: metric} maps; `decide_claim`
    applies the Holm correction across a claim's comparisons."""
    if goal not in ("min", "max"):
        raise ValueError(f"goal={goal!r} must be 'min' or 'max'")
    if expect not in ("better", "worse"):
        raise ValueError(f"expect={expect!r} must be 'better' or 'worse'")
    if gate is not None and gate.goal != goal:
        raise ValueError(f"gate goal={gate.goal!r} differs from the comparison's goal={goal!r}")
    seeds, v, b = paired(variant, baseline)
    sign = (1.0 if goal == "min" else -1.0) * (1.0 if expect == "worse" else -1.0)
    deltas = [sign * (x - y) for x, y in zip(v, b)]
    base_mean = sum(b) / len(b) if b else math.nan
    m = abs(min_effect * base_mean) if relative and b else abs(min_effect)
    gates = {"seeds": seeds, "variant": _gate_report(gate, v), "baseline": _gate_report(gate, b)}
    if len(seeds) < 2:
        return PairedVerdict(NO_VERDICT, "no verdict: fewer than 2 paired seeds", len(seeds), math.nan, math.nan,
                             math.nan, math.nan, math.nan, math.nan, min_effect=m, gates=gates,
                             reason=f"{len(seeds)} seed(s) finished in both arms")
    d, sd, lo, hi, p, p_tost = _tests(deltas, m, alpha)
    mde = mde_paired(sd, len(seeds), alpha) if sd and not math.isnan(sd) else math.nan
    return PairedVerdict(INCONCLUSIVE, INCONCLUSIVE, len(seeds), d, sd, lo, hi, p, p_tost, p, p_tost, mde, m,
                         underpowered=bool(m > 0 and not math.isnan(mde) and mde > m), gates=gates,
                         reason=f"sign={sign:+.0f}")


def _label(pv: PairedVerdict, alpha: float, claimed_better_arm: str) -> PairedVerdict:
    """Apply the gates and thresholds to an (adjusted) PairedVerdict."""
    g = pv.gates
    if pv.n < 2:
        return pv
    if pv.sd == 0.0 or math.isnan(pv.sd):
        why = "identical outputs in every seed" if pv.d == 0 else f"every seed differs by exactly {pv.d:.4g}"
        return replace(pv, verdict=NO_VERDICT, label="no verdict: zero variance",
                       reason=f"{why}: zero variance is not evidence (check the arms differ as intended)")
    other = "variant" if claimed_better_arm == "baseline" else "baseline"
    stats_txt = f"d={pv.d:.4g}, CI [{pv.ci_lo:.4g}, {pv.ci_hi:.4g}], p_adj={pv.p_adj:.3g}, n={pv.n}"

    def learned(arm: str) -> bool:
        return all(g[arm]["learned"])

    if pv.p_adj < alpha and pv.d >= pv.min_effect:
        if not learned(claimed_better_arm):
            return replace(pv, verdict=NO_VERDICT, label=f"no verdict: {claimed_better_arm} did not learn",
                           reason=f"{claimed_better_arm} below its learned level {g[claimed_better_arm].get('level')} "
                                  f"in some seed ({stats_txt})")
        return replace(pv, verdict=SUPPORTED, label=SUPPORTED, reason=f"{stats_txt}; d >= m={pv.min_effect:.4g}")
    if not math.isnan(pv.p_tost_adj) and pv.p_tost_adj < alpha:
        if not (learned("variant") and learned("baseline")):
            return replace(pv, verdict=NO_VERDICT, label="no verdict: an arm did not learn",
                           reason=f"equal within ±m but not both arms learned ({stats_txt})")
        if all(g["variant"]["ceiling"]) and all(g["baseline"]["ceiling"]):
            return replace(pv, verdict=NO_VERDICT, label="no verdict: both arms at ceiling",
                           reason=f"both arms reach the ceiling {g['baseline'].get('ceiling_level')}: the task cannot "
                                  f"show the effect ({stats_txt})")
        return replace(pv, verdict=CONTRADICTED, label="contradicted: no effect",
                       reason=f"TOST at ±{pv.min_effect:.4g}: p_adj={pv.p_tost_adj:.3g} ({stats_txt})")
    if pv.p_adj < alpha and pv.d < 0:
        if not learned(other):
            return replace(pv, verdict=NO_VERDICT, label=f"no verdict: {other} did not learn",
                           reason=f"opposite effect but {other} below its learned level in some seed ({stats_txt})")
        return replace(pv, verdict=CONTRADICTED, label="contradicted: opposite effect", reason=stats_txt)
    if pv.p_adj < alpha:
        return replace(pv, label="inconclusive (significant but below m)",
                       reason=f"{stats_txt}; d < m={pv.min_effect:.4g}")
    label = "inconclusive (underpowered)" if pv.underpowered else INCONCLUSIVE
    return replace(pv, label=label, reason=f"{stats_txt}; MDE(80%)={pv.mde:.4g} vs m={pv.min_effect:.4g}")


def decide_claim(comparisons: Sequence[Mapping], alpha: float = 0.05) -> list[PairedVerdict]:
    """Decide every comparison of one claim with Holm correction across them. Each item holds the keyword
    arguments of `decide_paired` (variant, baseline, goal, expect, min_effect, relative, gate)."""
    raw = [decide_paired(alpha=alpha, **c) for c in comparisons]
    p_adj = holm([r.p for r in raw])
    t_adj = holm([r.p_tost for r in raw])
    out = []
    for c, r, pa, ta in zip(comparisons, raw, p_adj, t_adj):
        r = replace(r, p_adj=pa, p_tost_adj=ta)
        better = "baseline" if c.get("expect", "worse") == "worse" else "variant"
        out.append(_label(r, alpha, better))
    return out


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its comparisons: all supported → supported; any contradicted → contradicted when
    none is supported, else mixed (the claim holds in part and fails in part); all 'no verdict' → no verdict;
    otherwise inconclusive."""
    vs = list(verdicts)
    if not vs:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in vs):
        return SUPPORTED
    if any(v == CONTRADICTED for v in vs):
        return MIXED if any(v == SUPPORTED for v in vs) else CONTRADICTED
    if all(v == NO_VERDICT for v in vs):
        return NO_VERDICT
    return INCONCLUSIVE
