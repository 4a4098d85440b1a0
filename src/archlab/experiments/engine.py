"""The one path from specs to verdicts: `run_specs(specs, store, executor, options)`.

`archlab claims`, `archlab experiment`, the calibrations and the demo's comparison all call it (one spec is a list
of one). It resolves every spec into runs (spec.resolve), executes the pending ones as one sweep on one executor
(sweep.run_plans), analyses them (judge.analysis), then runs follow-up passes while the finished runs call for
more: phase 2 of a two-phase lr sweep (the test seeds at each variant's best lr). The seeds are fixed in the spec
(no seed is ever added because of a result); Benjamini–Hochberg q-values are set across every comparison of the
sweep (judge.multiplicity). Cost specs are computations and are decided without runs (judge.cost_checks). A spec
whose metric (or a comparison's, or the gate's) its runs do not report stops after its first finished run.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from archlab.experiments.judge.analysis import analyze, with_phase_2
from archlab.experiments.judge.cost_checks import run_cost_checks
from archlab.experiments.judge.multiplicity import apply_fdr
from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.verdict import NO_VERDICT
from archlab.experiments.runs import param_counter_for
from archlab.experiments.spec import ExperimentSpec, RunPlan, resolve
from archlab.experiments.spec.power import undecidable
from archlab.experiments.sweep.driver import FirstRunCheck, RunOptions, Sweep, run_plans
from archlab.experiments.sweep.executor_base import Executor
from archlab.experiments.sweep.store import Store

__all__ = ["RunOptions", "metric_check", "plans_for", "run_specs", "with_steps"]


def run_specs(specs: Sequence[ExperimentSpec], store: Store, executor: Executor,
              options: RunOptions = RunOptions()) -> list[ExperimentResult]:
    """Run (resuming) every spec's runs as one sweep on `executor`, with follow-up passes, and decide every
    verdict; one result per spec, in order."""
    log = options.log or (lambda s: None)
    specs = [with_steps(s, options.steps) if options.steps is not None else s for s in specs]
    plans_of: dict[str, list[RunPlan]] = {}
    for spec in specs:
        store.put_experiment(spec.name, spec.title, spec.spec_hash, spec.raw)
        if spec.kind != "cost":
            plans_of[spec.name] = plans_for(spec, options, store)
    all_plans = [p for ps in plans_of.values() for p in ps]
    log(f"{len(specs)} experiment(s) ({options.profile}), {len(all_plans)} runs "
        f"({len({p.run_key for p in all_plans})} distinct), on {executor.describe()}")
    if options.profile != "quick":  # (quick decides nothing by design, and says so)
        for why in filter(None, (undecidable(s, options.profile) for s in specs)):
            log(f"warning: {why}")
    t0 = time.perf_counter()
    deadline = None if options.max_minutes is None else t0 + 60.0 * options.max_minutes
    check = metric_check(specs)
    refused = {n: m for n, ps in plans_of.items() if (m := _check_done(ps, store, check))}
    for msg in refused.values():
        log(f"{msg}; none of its runs started")
    sweep = run_plans([p for p in all_plans if p.experiment not in refused], store, executor, options, check=check)
    sweep.refused.update(refused)
    analysed = {s.name: analyze(s, store, plans_of[s.name], options.profile) for s in specs if s.kind != "cost"}
    while not sweep.left and not sweep.interrupted and options.max_new_runs is None:  # follow-up passes
        grown = follow_ups([s for s in specs if s.name not in sweep.refused], plans_of, store, options)
        if not grown:
            break
        left = None if deadline is None else max(1e-3, (deadline - time.perf_counter()) / 60.0)
        sweep.add(run_plans([p for n in grown for p in plans_of[n]], store, executor, options, max_minutes=left,
                            check=check))
        analysed.update({n: analyze(s, store, plans_of[n], options.profile) for n, s in grown.items()})
    log(f"{sweep.summary()} in {time.perf_counter() - t0:.0f}s")
    results = [_result(spec, store, analysed, sweep, options.profile) for spec in specs]
    apply_fdr([r for r in results if r.spec.kind != "cost"])
    return results


def _result(spec: ExperimentSpec, store: Store, analysed: Mapping[str, ExperimentResult], sweep: Sweep,
            profile: str) -> ExperimentResult:
    if spec.kind == "cost":
        return run_cost_checks(spec, store, profile)
    result = analysed[spec.name]
    result.sweep = sweep
    if spec.name in sweep.refused:  # its verdict says why, not "fewer than 6 paired seeds"
        why = f"no verdict: {sweep.refused[spec.name].split(': ', 1)[1]}"
        result.verdict = NO_VERDICT
        for cr in result.comparisons:
            cr.verdict = dataclasses.replace(cr.verdict, verdict=NO_VERDICT, label=why)
    return result


def unreported(spec: ExperimentSpec, final: Mapping[str, Any]) -> dict[str, str]:
    """The metrics a spec's verdict reads (its metric, each comparison's, the gate's) that `final` lacks: name ->
    the spec field that names it."""
    fields = [("metric", spec.metric)] + [(f"compare[{i}].metric", c.metric) for i, c in enumerate(spec.compare)]
    if spec.rule.gate is not None:
        fields.append(("rule.gate.metric", spec.rule.gate_metric or spec.metric))
    out: dict[str, str] = {}
    for field, name in fields:
        if name not in final:
            out.setdefault(name, field)
    return out


def metric_check(specs: Sequence[ExperimentSpec]) -> FirstRunCheck:
    """check(plan, final) for the sweep driver: '' when the run reports every metric its spec's verdict reads,
    else one line naming the missing metric(s) and those the run reports."""
    by_name = {s.name: s for s in specs}

    def check(plan: RunPlan, final: Mapping[str, Any]) -> str:
        spec = by_name.get(plan.experiment)
        missing = unreported(spec, final) if spec is not None else {}
        if not missing:
            return ""
        names = ", ".join(f"{field} {name!r}" for name, field in missing.items())
        verb = "is" if len(missing) == 1 else "are"
        return (f"{spec.name}: {names} {verb} not among the final metrics its runs report ({plan.variant} seed="
                f"{plan.seed} reports {', '.join(sorted(final)) or 'none'}); fix the spec")

    return check


def _check_done(plans: Sequence[RunPlan], store: Store, check: FirstRunCheck) -> str:
    """check() on the first of `plans` already finished in the store (a resumed sweep); '' when none is."""
    for plan in plans:
        prev = store.done_run_with_key(plan.run_key)
        if prev is not None:
            return check(plan, store.result(prev["id"]).get("final", {}))
    return ""


def plans_for(spec: ExperimentSpec, options: RunOptions, store: Store | None = None) -> list[RunPlan]:
    """The runs of a training spec for a profile (parameter counts matched as its runner needs). With a two-phase
    lr sweep (`lr_sweep_seeds`) and a store: phase 1 until it has finished, then phase 1 + phase 2."""
    counter = _counter(spec, options)
    plans = resolve(spec, options.profile, counter)
    return plans if store is None else with_phase_2(spec, store, options.profile, counter, plans)


def _counter(spec: ExperimentSpec, options: RunOptions) -> Callable[[Mapping[str, Any]], int] | None:
    """The parameter counter for a spec's configs: none for the toy runner or a run function passed as a callable
    (both build no archlab model), else the one its runner needs."""
    if spec.runner == "toy" or (options.run_fn is not None and not isinstance(options.run_fn, str)):
        return None
    return param_counter_for(spec.runner)


def follow_ups(specs: list[ExperimentSpec], plans_of: dict[str, list[RunPlan]], store: Store,
               options: RunOptions) -> dict[str, ExperimentSpec]:
    """The specs whose finished runs call for more runs — phase 2 of a two-phase lr sweep (the test seeds at each
    variant's best lr) — with `plans_of` updated in place to their new plans. The number of test seeds is fixed in
    the spec: no run is added because of a result (no optional stopping)."""
    grown = {}
    for s in specs:
        if s.kind == "cost":
            continue
        plans = plans_for(s, options, store)
        ids = lambda ps: {(p.variant, p.seed, p.run_key) for p in ps}  # noqa: E731
        if ids(plans) != ids(plans_of[s.name]):
            grown[s.name], plans_of[s.name] = s, plans
    return grown


def with_steps(spec: ExperimentSpec, steps: int) -> ExperimentSpec:
    """The spec with every profile's budget set to `steps` steps (its hash changes, so its runs are separate)."""
    profiles = {k: {**v, "budget": {"steps": steps}} for k, v in spec.profiles.items()}
    raw = {**spec.raw, "budget": {"steps": steps}, "profiles": profiles}
    return dataclasses.replace(spec, budget={"steps": steps}, profiles=profiles, raw=raw)
