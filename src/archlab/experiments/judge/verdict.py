"""The verdict rule for a claim's comparisons (decision procedure v2): paired over seeds, gated, an exact test
matched to the outcome, equivalence-tested, Holm within the claim (Benjamini–Hochberg across a sweep:
archlab.experiments.judge.multiplicity).

The arms of a comparison share seed, data order and evaluation split. For a directional claim (expect better or
worse) the unit of evidence is the per-seed difference δ_s = variant_s − baseline_s, oriented so that δ > 0 is what
the claim predicts; for `same` / `noninferior`, δ > 0 means the variant is worse. With n paired (test) seeds,
d = mean(δ) (the t interval is shown for size):

* **no verdict** with fewer than MIN_SEEDS (6) paired seeds, whatever the numbers;
* **gates first** (per seed, per arm): an arm "learned" when its metric is past the task's chance level and its
  plateau by the stated margin; "at ceiling" when it reaches the task's ceiling. The arm a verdict says is better
  must have learned in every seed; "no effect" needs both arms learned and not both at ceiling. Zero variance is
  never evidence;
* the **test fits the outcome** (rule.outcome; archlab.experiments.judge.exact): continuous → exact paired
  sign-flip test, TOST at ±m by the same test; solved → Fisher's exact test on the solved rates (d = difference of
  rates; no "no effect" verdict: ten seeds cannot show two rates equal within m); time → the log-rank test with
  runs that never reached the level censored at the budget (d = difference of mean steps);
* expect better / worse: **supported** — p_adj < α and d ≥ m; **contradicted: opposite effect** — p_adj < α and
  d < 0; **contradicted: no effect** — TOST p_adj < α (the claimed effect of at least m is excluded);
* expect same: **supported** — TOST p_adj < α; **contradicted** — p_adj < α and |d| ≥ m;
* expect noninferior ("loses little"): **supported** — the one-sided test of H0 "worse by m or more" rejects
  (p_adj < α); **contradicted** — the variant is significantly worse by at least m;
* **inconclusive** — anything else; labelled *underpowered* when the minimum detectable effect at 80 % power,
  (t₁₋α/₂ + t₀.₈)·s/√n, exceeds m.

The seeds, m, the metric, the outcome kind and the task are fixed in the claim's registered spec before its runs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from scipy import stats as sps

from archlab.experiments.judge.exact import fisher_p, holm, logrank_p, noninferior_p, sign_flip_p, tost_p
from archlab.experiments.spec.rule import MIN_SEEDS, PROCEDURE_VERSION, Gate

__all__ = ["CONTRADICTED", "INCONCLUSIVE", "MIXED", "NO_VERDICT", "RULE_TEXT", "SUPPORTED", "Gate", "PairedVerdict",
           "adjust", "combine", "decide_claim", "decide_paired", "gate_report", "holm", "label", "mde_paired", "paired"]

RULE_TEXT = (
    f"decision procedure v{PROCEDURE_VERSION}. Paired over a fixed, registered set of test seeds (at least "
    f"{MIN_SEEDS}; fewer: no verdict): delta_s = variant_s - baseline_s, signed so that delta > 0 is what the claim "
    "predicts; d = mean(delta), t interval shown for size. Gates first: the arm found better must have learned "
    "(past chance and plateau) in every seed; 'no effect' needs both arms learned and not both at ceiling; zero "
    "variance is no evidence. Tests: continuous metrics - exact paired sign-flip test, TOST at +-m; solved/unsolved "
    "outcomes - Fisher's exact test on solved rates; time to a level - log-rank test with censoring at the budget. "
    "supported: p (Holm-adjusted within the claim) < alpha and d >= m. contradicted (opposite): p_adj < alpha, "
    "d < 0. contradicted (no effect): TOST p_adj < alpha. expect same: supported by TOST, contradicted by a "
    "significant |d| >= m; expect noninferior: supported when 'worse by m or more' is rejected. inconclusive: "
    "otherwise. Across the sweep, Benjamini-Hochberg q-values decide which verdicts the headline counts."
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_VERDICT = "supported", "contradicted", "inconclusive", "no verdict"
MIXED = "mixed"  # a claim with several comparisons: some supported, some contradicted


@dataclass(frozen=True)
class PairedVerdict:
    """A verdict on one comparison with every number it rests on."""

    verdict: str  # supported | contradicted | inconclusive | no verdict
    label: str  # e.g. "contradicted: no effect", "inconclusive (underpowered)"
    n: int  # paired seeds
    d: float  # the effect in the claimed direction: mean paired difference, or difference of solved rates / times
    sd: float  # sd of the paired differences
    ci_lo: float  # t interval of the mean paired difference (for size; the tests are exact)
    ci_hi: float
    p: float  # the outcome's test of "no difference", two-sided, unadjusted
    p_tost: float  # equivalence within ±m (continuous outcomes only)
    p_adj: float = math.nan  # Holm within the claim
    p_tost_adj: float = math.nan
    mde: float = math.nan  # minimum detectable effect at 80 % power (continuous)
    min_effect: float = 0.0
    underpowered: bool = False
    gates: dict = field(default_factory=dict)
    reason: str = ""
    outcome: str = "continuous"
    expect: str = "worse"
    p_ni: float = math.nan  # noninferiority: H0 "the variant is worse by m or more"
    p_ni_adj: float = math.nan
    solved: tuple = ()  # outcome 'solved': (variant solved, baseline solved) of n
    q: float = math.nan  # Benjamini–Hochberg q-value of the deciding test across the sweep
    procedure: str = PROCEDURE_VERSION

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def deciding_test(self) -> str:
        """Which p-value field ('p', 'p_tost' or 'p_ni') belongs to the test that decides (or would decide) this
        comparison's verdict."""
        if "contradicted: no effect" in self.label or (self.expect == "same" and self.verdict == SUPPORTED):
            return "p_tost"
        if self.expect == "noninferior" and self.verdict == SUPPORTED:
            return "p_ni"
        return "p"

    @property
    def deciding_p(self) -> float:
        """The unadjusted p-value of the deciding test."""
        return getattr(self, self.deciding_test)


def paired(variant: Mapping, baseline: Mapping) -> tuple[list, list[float], list[float]]:
    """The seeds present (and finite) in both arms, with their values in seed order."""
    seeds = sorted(s for s in variant if s in baseline and _finite(variant[s]) and _finite(baseline[s]))
    return seeds, [float(variant[s]) for s in seeds], [float(baseline[s]) for s in seeds]


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def mde_paired(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired test detects with the given power (normal-shift
    approximation with t quantiles): (t_{1-α/2,n-1} + t_{power,n-1}) · sd / √n."""
    if n < 2:
        return math.inf
    return float((sps.t.ppf(1 - alpha / 2, n - 1) + sps.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def gate_report(gate: Gate | None, values: list[float]) -> dict:
    """Per seed: whether the arm learned and whether it is at the ceiling (and the gate's levels)."""
    if gate is None:
        return {"learned": [True] * len(values), "ceiling": [False] * len(values)}
    return {"learned": [gate.learned(v) for v in values], "ceiling": [gate.at_ceiling(v) for v in values],
            "level": gate.learned_level, "chance": gate.chance, "plateau": gate.plateau, "ceiling_level": gate.ceiling}


def _continuous(deltas: list[float], m: float, alpha: float, tests: bool = True) -> dict:
    """Mean, sd and t interval of the differences, with (when `tests`) the exact sign-flip p, TOST p and
    noninferiority p and the MDE; without, those are NaN (another outcome's test decides)."""
    n = len(deltas)
    d = sum(deltas) / n
    sd = math.sqrt(sum((x - d) ** 2 for x in deltas) / (n - 1)) if n > 1 else math.nan
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n) if n > 1 and sd > 0 else math.inf
    out = {"d": d, "sd": sd, "ci_lo": d - half, "ci_hi": d + half, "p": math.nan, "p_tost": math.nan,
           "p_ni": math.nan, "mde": math.nan}
    if tests:
        out |= {"p": float(sign_flip_p(deltas)), "p_tost": float(tost_p(deltas, m)) if m > 0 else math.nan,
                "p_ni": float(noninferior_p(deltas, m)) if m > 0 else math.nan,
                "mde": mde_paired(sd, n, alpha) if sd and not math.isnan(sd) else math.nan}
    return out


def _solved(v: list[float], b: list[float], worse: bool, goal: str, level: float) -> dict:
    """Solved counts per arm and Fisher's exact p; d = difference of solved rates in the claimed direction."""
    def past(x: float) -> bool:
        return x >= level if goal == "max" else x <= level

    sv, sb, n = sum(map(past, v)), sum(map(past, b)), len(v)
    # 'solved' already reads the goal (past the level), so only the expectation signs d: a variant claimed worse
    # should solve *fewer* runs than the baseline (d = baseline rate − variant rate > 0)
    d = (sb - sv) / n if worse else (sv - sb) / n
    return {"d": d, "p": fisher_p(sv, n, sb, n), "solved": (sv, sb)}


def _time(v: list[float], b: list[float], sign: float, censored_at: float) -> dict:
    """Log-rank p on steps to the level (censored at the budget); d = difference of mean steps, claimed > 0."""
    d = sign * (sum(min(x, censored_at) for x in v) - sum(min(x, censored_at) for x in b)) / len(v)
    return {"d": d, "p": logrank_p(v, b, censored_at)}


def decide_paired(variant: Mapping, baseline: Mapping, *, goal: str = "min", expect: str = "worse",
                  min_effect: float = 0.0, relative: bool = False, alpha: float = 0.05, gate: Gate | None = None,
                  outcome: str = "continuous", solved_at: float | None = None,
                  censored_at: float | None = None) -> PairedVerdict:
    """Unadjusted verdict on 'variant is `expect` than baseline' from {seed: metric} maps; `decide_claim`
    applies the Holm correction across a claim's comparisons and labels it."""
    _check_args(goal, expect, gate, outcome, solved_at, censored_at)
    seeds, v, b = paired(variant, baseline)
    worse = expect in ("worse", "same", "noninferior")
    sign = (1.0 if goal == "min" else -1.0) * (1.0 if worse else -1.0)
    base_mean = sum(b) / len(b) if b else math.nan
    m = abs(min_effect * base_mean) if relative and b else abs(min_effect)
    gates = {"seeds": seeds, "variant": gate_report(gate, v), "baseline": gate_report(gate, b)}
    common = {"min_effect": m, "gates": gates, "outcome": outcome, "expect": expect}
    if len(seeds) < MIN_SEEDS:
        return PairedVerdict(NO_VERDICT, f"no verdict: fewer than {MIN_SEEDS} paired seeds", len(seeds), math.nan,
                             math.nan, math.nan, math.nan, math.nan, math.nan, **common,
                             reason=f"{len(seeds)} seed(s) finished in both arms; the procedure needs {MIN_SEEDS}")
    deltas = [sign * (x - y) for x, y in zip(v, b)]
    stats = _continuous(deltas, m, alpha, tests=outcome == "continuous")
    if outcome == "solved":
        stats |= _solved(v, b, worse, goal, float(solved_at))
    elif outcome == "time":
        stats |= _time(v, b, sign, float(censored_at))
    mde = stats.pop("mde")
    return PairedVerdict(INCONCLUSIVE, INCONCLUSIVE, len(seeds), **stats, p_adj=stats["p"],
                         p_tost_adj=stats["p_tost"], p_ni_adj=stats["p_ni"], mde=mde,
                         underpowered=bool(m > 0 and not math.isnan(mde) and mde > m), **common,
                         reason=f"sign={sign:+.0f}")


def _check_args(goal: str, expect: str, gate: Gate | None, outcome: str, solved_at, censored_at) -> None:
    if goal not in ("min", "max"):
        raise ValueError(f"goal={goal!r} must be 'min' or 'max'")
    if expect not in ("better", "worse", "same", "noninferior"):
        raise ValueError(f"expect={expect!r} must be 'better', 'worse', 'same' or 'noninferior'")
    if gate is not None and gate.goal != goal:
        raise ValueError(f"gate goal={gate.goal!r} differs from the comparison's goal={goal!r}")
    if outcome not in ("continuous", "solved", "time"):
        raise ValueError(f"outcome={outcome!r} must be 'continuous', 'solved' or 'time'")
    if outcome == "solved" and solved_at is None or outcome == "time" and censored_at is None:
        raise ValueError(f"outcome={outcome!r} needs {'solved_at' if outcome == 'solved' else 'censored_at'}")


def label(pv: PairedVerdict, alpha: float) -> PairedVerdict:
    """Apply the gates and thresholds to a (Holm-adjusted) PairedVerdict."""
    if pv.n < MIN_SEEDS:
        return pv
    if pv.outcome == "continuous" and (pv.sd == 0.0 or math.isnan(pv.sd)):
        why = "identical outputs in every seed" if pv.d == 0 else f"every seed differs by exactly {pv.d:.4g}"
        return replace(pv, verdict=NO_VERDICT, label="no verdict: zero variance",
                       reason=f"{why}: zero variance is not evidence (check the arms differ as intended)")
    txt = _stats_text(pv)
    if pv.expect == "same":
        return _same(pv, alpha, txt)
    if pv.expect == "noninferior":
        return _noninferior(pv, alpha, txt)
    return _directional(pv, alpha, txt)


def _stats_text(pv: PairedVerdict) -> str:
    solved = f", solved {pv.solved[0]}/{pv.n} vs {pv.solved[1]}/{pv.n}" if pv.solved else ""
    return f"d={pv.d:.4g}, CI [{pv.ci_lo:.4g}, {pv.ci_hi:.4g}], p_adj={pv.p_adj:.3g}, n={pv.n}{solved} ({pv.outcome})"


def _learned(pv: PairedVerdict, arm: str) -> bool:
    """An arm learned in every seed (continuous), or in some seed (solved / time: not solving is an outcome)."""
    flags = pv.gates[arm]["learned"]
    return all(flags) if pv.outcome == "continuous" else any(flags)


def _at_ceiling(pv: PairedVerdict) -> bool:
    g = pv.gates
    return all(g["variant"]["ceiling"]) and all(g["baseline"]["ceiling"])


def _equivalence(pv: PairedVerdict, label_text: str, txt: str) -> PairedVerdict:
    """'Equal within ±m' stands only on arms that both learned and are not both at the ceiling."""
    if not (_learned(pv, "variant") and _learned(pv, "baseline")):
        return replace(pv, verdict=NO_VERDICT, label="no verdict: an arm did not learn",
                       reason=f"equal within ±m but not both arms learned ({txt})")
    if _at_ceiling(pv):
        return replace(pv, verdict=NO_VERDICT, label="no verdict: both arms at ceiling",
                       reason=f"both arms reach the ceiling {pv.gates['baseline'].get('ceiling_level')}: the task "
                              f"cannot show the effect ({txt})")
    verdict = CONTRADICTED if label_text.startswith(CONTRADICTED) else SUPPORTED
    return replace(pv, verdict=verdict, label=label_text,
                   reason=f"TOST at ±{pv.min_effect:.4g}: p_adj={pv.p_tost_adj:.3g} ({txt})")


def _directional(pv: PairedVerdict, alpha: float, txt: str) -> PairedVerdict:
    better = "baseline" if pv.expect == "worse" else "variant"
    other = "variant" if better == "baseline" else "baseline"
    if pv.p_adj < alpha and pv.d >= pv.min_effect:
        if not _learned(pv, better):
            return replace(pv, verdict=NO_VERDICT, label=f"no verdict: {better} did not learn",
                           reason=f"{better} below its learned level {pv.gates[better].get('level')} ({txt})")
        return replace(pv, verdict=SUPPORTED, label=SUPPORTED, reason=f"{txt}; d >= m={pv.min_effect:.4g}")
    if not math.isnan(pv.p_tost_adj) and pv.p_tost_adj < alpha:
        return _equivalence(pv, "contradicted: no effect", txt)
    if pv.p_adj < alpha and pv.d < 0:
        if not _learned(pv, other):
            return replace(pv, verdict=NO_VERDICT, label=f"no verdict: {other} did not learn",
                           reason=f"opposite effect but {other} below its learned level ({txt})")
        return replace(pv, verdict=CONTRADICTED, label="contradicted: opposite effect", reason=txt)
    return _undecided(pv, alpha, txt)


def _same(pv: PairedVerdict, alpha: float, txt: str) -> PairedVerdict:
    if not math.isnan(pv.p_tost_adj) and pv.p_tost_adj < alpha:
        return _equivalence(pv, "supported: equivalent within ±m", txt)
    if pv.p_adj < alpha and abs(pv.d) >= pv.min_effect:
        return replace(pv, verdict=CONTRADICTED, label="contradicted: they differ by at least m", reason=txt)
    return _undecided(pv, alpha, txt)


def _noninferior(pv: PairedVerdict, alpha: float, txt: str) -> PairedVerdict:
    if not math.isnan(pv.p_ni_adj) and pv.p_ni_adj < alpha:
        if not _learned(pv, "variant"):
            return replace(pv, verdict=NO_VERDICT, label="no verdict: variant did not learn", reason=txt)
        return replace(pv, verdict=SUPPORTED, label="supported: worse by less than m",
                       reason=f"H0 'worse by ≥ {pv.min_effect:.4g}' rejected: p_adj={pv.p_ni_adj:.3g} ({txt})")
    if pv.p_adj < alpha and pv.d >= pv.min_effect:
        return replace(pv, verdict=CONTRADICTED, label="contradicted: worse by at least m", reason=txt)
    return _undecided(pv, alpha, txt)


def _undecided(pv: PairedVerdict, alpha: float, txt: str) -> PairedVerdict:
    if pv.p_adj < alpha:
        return replace(pv, label="inconclusive (significant but below m)",
                       reason=f"{txt}; |d| < m={pv.min_effect:.4g}")
    label_text = "inconclusive (underpowered)" if pv.underpowered else INCONCLUSIVE
    return replace(pv, label=label_text, reason=f"{txt}; MDE(80%)={pv.mde:.4g} vs m={pv.min_effect:.4g}")


def adjust(raw: Sequence[PairedVerdict], alpha: float) -> list[PairedVerdict]:
    """Holm within one claim (for each of its tests), then each comparison labelled."""
    p_adj, t_adj, n_adj = (holm([getattr(r, k) for r in raw]) for k in ("p", "p_tost", "p_ni"))
    return [label(replace(r, p_adj=pa, p_tost_adj=ta, p_ni_adj=na), alpha)
            for r, pa, ta, na in zip(raw, p_adj, t_adj, n_adj)]


def decide_claim(comparisons: Sequence[Mapping], alpha: float = 0.05) -> list[PairedVerdict]:
    """Decide every comparison of one claim with Holm correction across them. Each item holds the keyword
    arguments of `decide_paired` (variant, baseline, goal, expect, min_effect, relative, gate, outcome, ...)."""
    return adjust([decide_paired(alpha=alpha, **c) for c in comparisons], alpha)


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
