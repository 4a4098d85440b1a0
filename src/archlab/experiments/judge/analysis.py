"""The analysis of an experiment's finished runs: each variant judged at its best learning rate, every
comparison decided by the paired, gated rule (archlab.experiments.judge.verdict), Holm across the claim's
comparisons."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from archlab.experiments.judge.results import ComparisonResult, ExperimentResult
from archlab.experiments.judge.verdict import _gate_report, _label, combine, decide_paired, holm
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
                    "code_hash": r.get("code_hash") or p.code_hash})
    return by_lr


def best_lrs(spec: ExperimentSpec, store: Store, plans: list[RunPlan]) -> dict[str, float | None] | None:
    """Each variant's best lr among `plans` (pick_lr), or None while any of them has not finished."""
    by_lr = finished_by_lr(spec, store, plans)
    if sum(len(rs) for o in by_lr.values() for rs in o.values()) < len(plans):
        return None
    return {v: pick_lr({lr: rs for lr, rs in o.items() if rs}, spec.metric, spec.goal) for v, o in by_lr.items()}


def with_phase_2(spec: ExperimentSpec, store: Store, profile: str, counter: Callable[[Mapping[str, Any]], int] | None,
                 plans: list[RunPlan]) -> list[RunPlan]:
    """A two-phase lr sweep's plans once its phase 1 (`plans`) has finished: phase 1 + the other seeds at each
    variant's best lr; otherwise `plans` unchanged."""
    if spec.lr_sweep_seeds_for(profile) and (best := best_lrs(spec, store, plans)) is not None:
        return resolve(spec, profile, counter, best_lr=best)
    return plans


def analyze(spec: ExperimentSpec, store: Store, plans: list[RunPlan], profile: str) -> ExperimentResult:
    """Collect the finished runs of a plan list, judge each variant at its best lr (lr_sweep) and decide every
    comparison of the spec by the paired, gated rule with Holm correction (archlab.experiments.judge.verdict)."""
    by_lr = finished_by_lr(spec, store, plans)
    runs, best, table = {}, {}, {}
    for v, options in by_lr.items():
        best[v] = pick_lr({lr: rs for lr, rs in options.items() if rs}, spec.metric, spec.goal)
        runs[v] = options.get(best[v], [])
        if len(options) > 1 or next(iter(options), None) is not None:
            table[v] = {lr: (_score([r["final"].get(spec.metric, math.nan) for r in rs], "max"), len(rs))
                        for lr, rs in options.items()}
    n_done = sum(len(rs) for options in by_lr.values() for rs in options.values())
    out = ExperimentResult(spec, profile, plans, runs, [], "inconclusive", best_lr=best, lr_table=table, n_done=n_done)
    out.comparisons = decide_comparisons(spec, out)
    for cr in out.comparisons:
        store.put_verdict(spec.name, profile, cr.label, cr.verdict.verdict, cr.verdict.as_dict())
    out.verdict = combine([c.verdict.verdict for c in out.comparisons])
    return out


def decide_comparisons(spec: ExperimentSpec, result: ExperimentResult) -> list[ComparisonResult]:
    """Every comparison of a spec: paired over seeds, the gate on the rule's gate metric per seed and per arm,
    Holm across the claim's comparisons (verdict.decide_claim, with the gate read from its own metric)."""
    rule, gate = spec.rule, spec.rule.gate
    gmetric = rule.gate_metric or spec.metric
    raw: list[tuple[ComparisonResult, str]] = []
    for c in spec.compare:
        vmap, bmap = result.by_seed(c.variant, c.metric), result.by_seed(c.baseline, c.metric)
        m = rule.min_effect if c.min_effect is None else c.min_effect
        pv = decide_paired(vmap, bmap, goal=c.goal, expect=c.expect, min_effect=m, relative=rule.relative,
                           alpha=rule.alpha)
        if gate is not None:
            seeds = pv.gates["seeds"]
            gv, gb = result.by_seed(c.variant, gmetric), result.by_seed(c.baseline, gmetric)
            pv = replace(pv, gates={"seeds": seeds, "metric": gmetric, "goal": gate.goal,
                                    "variant": _gate_report(gate, [gv.get(s, math.nan) for s in seeds]),
                                    "baseline": _gate_report(gate, [gb.get(s, math.nan) for s in seeds])})
        raw.append((ComparisonResult(c, pv, vmap, bmap), "baseline" if c.expect == "worse" else "variant"))
    p_adj = holm([cr.verdict.p for cr, _ in raw])
    t_adj = holm([cr.verdict.p_tost for cr, _ in raw])
    out = []
    for (cr, better), pa, ta in zip(raw, p_adj, t_adj):
        cr.verdict = _label(replace(cr.verdict, p_adj=pa, p_tost_adj=ta), rule.alpha, better)
        out.append(cr)
    return out
