"""Budget dependence: each verdict re-decided from the logged curves at half the budget — every metric the verdict
reads, per seed, at the curve point nearest to half the steps — through the same decision function
(judge.analysis.decide_comparisons). A verdict that differs is 'budget-dependent (at half budget: X)'."""
from __future__ import annotations

import dataclasses
from typing import Any

from archlab.experiments.judge.analysis import decide_comparisons
from archlab.experiments.judge.results import ExperimentResult, claim_label
from archlab.experiments.judge.verdict import combine

NOT_POSSIBLE = "half-budget check not possible"


def _steps(result: ExperimentResult) -> float | None:
    """The budget's steps (else the furthest logged step)."""
    budget = result.plans[0].budget if result.plans else result.spec.budget_for(result.profile)
    if budget.get("steps"):
        return float(budget["steps"])
    last = [p["step"] for rs in result.runs.values() for r in rs for p in r.get("curve") or [] if "step" in p]
    return float(max(last)) if last else None


def value_at(curve: list[dict[str, Any]], metric: str, step: float) -> float | None:
    """The metric at the curve point (that logs it) nearest to `step` (ties: the earlier point); None if never."""
    pts = [p for p in curve if metric in p and "step" in p and p[metric] is not None]
    if not pts:
        return None
    return float(min(pts, key=lambda p: (abs(float(p["step"]) - step), float(p["step"])))[metric])


def _metrics(result: ExperimentResult) -> list[str]:
    """Every metric a verdict reads: the comparisons' metrics and the gate's."""
    spec = result.spec
    names = [c.metric for c in spec.compare]
    if spec.rule.gate is not None:
        names.append(spec.rule.gate_metric or spec.metric)
    return list(dict.fromkeys(names))


def at_half_budget(result: ExperimentResult) -> ExperimentResult | str:
    """A copy of the result whose runs' finals are the curves' values at half the budget, or the reason (a
    'half-budget check not possible …' line) when no such copy can be made."""
    steps = _steps(result)
    if steps is None:
        return f"{NOT_POSSIBLE} (no budget in steps)"
    half, metrics = steps / 2.0, _metrics(result)
    runs: dict[str, list[dict[str, Any]]] = {}
    for variant, rs in result.runs.items():
        runs[variant] = []
        for r in rs:
            final = dict(r.get("final") or {})
            for m in metrics:
                v = value_at(r.get("curve") or [], m, half)
                if v is None:
                    return f"{NOT_POSSIBLE} (the logged curve has no {m})"
                final[m] = v
            runs[variant].append({**r, "final": final})
    return dataclasses.replace(result, runs=runs, comparisons=[], sweep=None)


def half_budget_check(result: ExperimentResult) -> tuple[str, str]:
    """(the verdict at half the budget, the line a report shows): 'budget-dependent (at half budget: X)' when it
    differs from the full-budget verdict, 'same at half budget' when not, or why the check is not possible."""
    if result.spec.kind != "train" or not result.comparisons:
        return "", ""
    half = at_half_budget(result)
    if isinstance(half, str):
        return "", half
    comparisons = decide_comparisons(result.spec, half)
    verdict = combine([c.verdict.verdict for c in comparisons])
    label = claim_label(verdict, [c.verdict for c in comparisons], result.spec.rule.relative)
    full = claim_label(result.verdict, [c.verdict for c in result.comparisons], result.spec.rule.relative)
    if label == full:
        return label, "same at half budget"
    return label, f"budget-dependent (at half budget: {label})"


def check_budgets(results: list[Any]) -> None:
    """Set `half_budget` and `budget_check` on every training result (a failure to re-decide is reported, not
    raised: the full-budget verdict stands on its own)."""
    for r in results:
        if not isinstance(r, ExperimentResult):
            continue
        try:
            r.half_budget, r.budget_check = half_budget_check(r)
        except (ValueError, KeyError, TypeError, ArithmeticError) as e:
            r.half_budget, r.budget_check = "", f"{NOT_POSSIBLE} ({type(e).__name__}: {e})"
