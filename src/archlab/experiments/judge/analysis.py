"""The analysis of an experiment's finished runs: each variant judged at its best learning rate, every
comparison decided by the paired, gated rule (archlab.experiments.judge.verdict), Holm across the claim's
comparisons."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.judge.results import ComparisonResult, ExperimentResult
from archlab.experiments.judge.verdict import adjust, combine, decide_paired, gate_report
from archlab.experiments.spec import ExperimentSpec, RunPlan, resolve
from archlab.experiments.sweep.store import Store

__all__ = ["ComparisonResult", "ExperimentResult", "analyze", "decide_comparisons", "pick_lr"]


def _score(values: list[float], goal: str) -> float:
    """Mean of a metric oriented so that larger is better (a non-finite value, a diverged run, scores -inf)."""
    if not values or any(not math.isfinite(v) for v in values):
        return -math.inf
    mean = sum(values) / len(values)
    return mean if goal == "max" else -mean


def pick_lr(by_lr: Mapping[float | None, list[dict[str, Any]]], metric: str, goal: str) -> float | None:
    """The learning rate a variant is judged at: among those with the most finished seeds, the best mean of
    `metric` over seeds (ties: the smaller lr)."""
    if not by_lr:
        return None
    most = max(len(runs) for runs in by_lr.values())
    cands = [lr for lr, runs in by_lr.items() if len(runs) == most]
    return max(cands, key=lambda lr: (_score([r["final"].get(metric, math.nan) for r in by_lr[lr]], goal),
                                      -(lr or 0.0)))


def finished_by_lr(spec: ExperimentSpec, store: Store,
                   plans: list[RunPlan]) -> dict[str, dict[float | None, list[dict[str, Any]]]]:
    """The finished runs of a plan list: variant -> lr -> one record per finished seed."""
    rows = {(r["variant"], r["seed"], r["run_key"]): r for r in store.runs(spec.name)}
    by_lr: dict[str, dict[float | None, list[dict[str, Any]]]] = {v: {} for v in spec.variants}
    for p in plans:
        r = rows.get((p.variant, p.seed, p.run_key))
        lrs = by_lr.setdefault(p.variant, {}).setdefault(p.lr, [])
        if r is None or r["status"] != "done":
            continue
        res = store.result(r["id"])
        lrs.append({"seed": p.seed, "final": res["final"], "curve": res["curve"], "n_params": r["n_params"],
                    "wall_time_s": r["wall_time_s"], "run_id": r["id"], "lr": p.lr,
                    "code_hash": r.get("code_hash") or p.code_hash, "role": p.role})
    return by_lr


def _selection(options: Mapping[float | None, list[dict[str, Any]]]) -> dict[float | None, list[dict[str, Any]]]:
    """The runs an lr is picked on: the selection seeds' runs when there are any, else every run (older specs)."""
    sel = {lr: [r for r in rs if r.get("role") == "select"] for lr, rs in options.items()}
    return {lr: rs for lr, rs in (sel if any(sel.values()) else options).items() if rs}


def best_lrs(spec: ExperimentSpec, store: Store, plans: list[RunPlan]) -> dict[str, float | None] | None:
    """Each variant's best lr among `plans` (pick_lr on the selection runs), or None while any has not finished."""
    by_lr = finished_by_lr(spec, store, plans)
    if sum(len(rs) for o in by_lr.values() for rs in o.values()) < len(plans):
        return None
    return {v: pick_lr(_selection(o), spec.metric, spec.goal) for v, o in by_lr.items()}


LR_EXTEND_MAX = 2  # the registered grid rule: an edge grows by at most this many points


def grown_grid(grid: list[float], registered: list[float], best: Mapping[str, float | None]) -> list[float] | None:
    """The lr grid grown by one point past an edge that some variant's best lr sits on (the ratio of the registered
    grid's outermost spacing), at most LR_EXTEND_MAX points per edge; None when no edge needs (or may) grow."""
    if len(registered) < 2:
        return None
    lo, hi = min(registered), max(registered)
    up, down = sorted(registered)[-1] / sorted(registered)[-2], sorted(registered)[1] / sorted(registered)[0]
    new = list(grid)
    if any(b == max(grid) for b in best.values()) and sum(x > hi for x in grid) < LR_EXTEND_MAX:
        new.append(max(grid) * up)
    if any(b == min(grid) for b in best.values()) and sum(x < lo for x in grid) < LR_EXTEND_MAX:
        new.append(min(grid) / down)
    return sorted(float(f"{x:.6g}") for x in new) if len(new) > len(grid) else None


def with_phase_2(spec: ExperimentSpec, store: Store, profile: str, counter: Callable[[Mapping[str, Any]], int] | None,
                 plans: list[RunPlan]) -> list[RunPlan]:
    """A two-phase lr sweep's plans once its phase 1 (`plans`) has finished: the grid grown past an edge a best lr
    sits on (then phase 1 again on the new points), else phase 1 + the test seeds at each variant's best lr;
    `plans` unchanged while phase 1 runs or for a one-phase spec."""
    select = spec.lr_select_seeds_for(profile)
    if not (select or spec.lr_sweep_seeds_for(profile)):
        return plans
    while True:  # grows the grid at most 2 × LR_EXTEND_MAX times
        grid = sorted({p.lr for p in plans if p.lr is not None})
        phase_1 = [p for p in plans if p.role == "select"] if select else plans
        if (best := best_lrs(spec, store, phase_1)) is None:
            return plans
        if not select or (more := grown_grid(grid, spec.lrs_for(profile), best)) is None:
            return resolve(spec, profile, counter, best_lr=best, lrs=grid)
        plans = resolve(spec, profile, counter, lrs=more)


def analyze(spec: ExperimentSpec, store: Store, plans: list[RunPlan], profile: str) -> ExperimentResult:
    """Collect the finished runs of a plan list from the store and judge them (judge_runs); the verdicts are
    recorded in the store."""
    out = judge_runs(spec, profile, plans, finished_by_lr(spec, store, plans))
    for cr in out.comparisons:
        store.put_verdict(spec.name, profile, cr.label, cr.verdict.verdict, cr.verdict.as_dict())
    return out


def judge_runs(spec: ExperimentSpec, profile: str, plans: list[RunPlan],
               by_lr: Mapping[str, Mapping[float | None, list[dict[str, Any]]]]) -> ExperimentResult:
    """Judge each variant at its best lr (picked on the selection runs) on its test runs and decide every
    comparison by the paired, gated rule with Holm correction (judge.verdict); no store needed (--recompute)."""
    runs, best, table = {}, {}, {}
    for v, options in by_lr.items():
        best[v] = pick_lr(_selection(options), spec.metric, spec.goal)
        runs[v] = [r for r in options.get(best[v], []) if r.get("role", "test") == "test"]
        if len(options) > 1 or next(iter(options), None) is not None:
            table[v] = {lr: (_score([r["final"].get(spec.metric, math.nan) for r in rs], "max"), len(rs))
                        for lr, rs in options.items()}
    n_done = sum(len(rs) for options in by_lr.values() for rs in options.values())
    out = ExperimentResult(spec, profile, plans, runs, [], "inconclusive", best_lr=best, lr_table=table, n_done=n_done,
                           by_lr={v: dict(o) for v, o in by_lr.items()})
    out.comparisons = decide_comparisons(spec, out)
    out.verdict = combine([c.verdict.verdict for c in out.comparisons])
    return out


def censoring_point(spec: ExperimentSpec, profile: str) -> float | None:
    """The rule's censored_at as a number: 'budget' is the profile's step budget, exclusive (a run that reached the
    level at the last evaluation, step == budget, counts as reached; one that never did reports more)."""
    at = spec.rule.censored_at
    if at != "budget":
        return at
    steps = spec.budget_for(profile).get("steps")
    if steps is None:
        raise ConfigError(f"{spec.name}: rule.censored_at=budget needs a step budget at profile {profile!r}")
    return float(steps) + 1.0


def decide_comparisons(spec: ExperimentSpec, result: ExperimentResult) -> list[ComparisonResult]:
    """Every comparison of a spec: paired over its test seeds, the test its rule's outcome calls for, the gate on
    the rule's gate metric per seed and per arm, Holm across the claim's comparisons (judge.verdict)."""
    rule, gate = spec.rule, spec.rule.gate
    gmetric = rule.gate_metric or spec.metric
    raw: list[ComparisonResult] = []
    for c in spec.compare:
        vmap, bmap = result.by_seed(c.variant, c.metric), result.by_seed(c.baseline, c.metric)
        m = rule.min_effect if c.min_effect is None else c.min_effect
        pv = decide_paired(vmap, bmap, goal=c.goal, expect=c.expect, min_effect=m, relative=rule.relative,
                           alpha=rule.alpha, outcome=rule.outcome, solved_at=rule.solved_at,
                           censored_at=censoring_point(spec, result.profile))
        if gate is not None:
            seeds = pv.gates["seeds"]
            gv, gb = result.by_seed(c.variant, gmetric), result.by_seed(c.baseline, gmetric)
            pv = replace(pv, gates={"seeds": seeds, "metric": gmetric, "goal": gate.goal,
                                    "variant": gate_report(gate, [gv.get(s, math.nan) for s in seeds]),
                                    "baseline": gate_report(gate, [gb.get(s, math.nan) for s in seeds])})
        raw.append(ComparisonResult(c, pv, vmap, bmap))
    for cr, pv in zip(raw, adjust([cr.verdict for cr in raw], rule.alpha)):
        cr.verdict = pv
    return raw
