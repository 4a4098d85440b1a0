"""The built-in claims suite: run every seed claim (specs/*.yaml), decide verdicts, write the report.

Calibrations (calibration/*.yaml, `archlab claims --calibrate`) reproduce published results whose direction is
known; a claim family whose calibration was not run or did not reproduce has its verdicts shown as
"uncalibrated (<verdict>)" (`apply_calibrations`).

Also here: `quick_comparison`, the small live comparison `archlab demo` ends with. The run functions some
claims need are in archlab.experiments.runner (teacher forcing vs free running) and claim_runs; the cost checks
that verify seed 003's numbers with archlab.cost instead of training are in archlab.experiments.cost_checks.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.cost_checks import run_cost_checks
from archlab.experiments.runner import teacher_forcing_run  # noqa: F401  (re-exported)
from archlab.experiments.spec import ExperimentSpec, builtin_specs, calibration_specs, resolve, spec_from_dict
from archlab.experiments.store import Store

# ---------------------------------------------------------------- the suite


def select_specs(only: Sequence[str] | None = None, specs: list[ExperimentSpec] | None = None) -> list[ExperimentSpec]:
    """Built-in specs, filtered by name or family (`--only`); an unknown name is a clear error."""
    specs = specs if specs is not None else builtin_specs()
    if not only:
        return specs
    families = {f for s in specs for f in s.families}
    known = {s.name for s in specs} | families
    for n in only:
        if n not in known:
            raise ConfigError(f"--only {n!r} names no claim; claims: {sorted(s.name for s in specs)}; "
                              f"families: {sorted(families)}")
    return [s for s in specs if s.name in only or set(s.families) & set(only)]


def plans_for(spec: ExperimentSpec, profile: str, store: Store | None = None):
    """The runs of a training spec for a profile (parameter counts matched as its runner needs). With a two-phase
    lr sweep (`lr_sweep_seeds`) and a store: phase 1 until it has finished, then phase 1 + phase 2 (the other
    seeds at each variant's best lr)."""
    from archlab.experiments.analysis import param_counter_for, with_phase_2

    counter = param_counter_for(spec.runner)
    plans = resolve(spec, profile, counter)
    return plans if store is None else with_phase_2(spec, store, profile, counter, plans)


def run_suite(specs: Sequence[ExperimentSpec], store: Store, *, profile: str = "quick", out_dir: str | Path,
              jobs: int = 2, inline: bool = False, max_new_runs: int | None = None,
              log: Callable[[str], None] | None = print, executor=None, progress: bool = False,
              max_minutes: float | None = None) -> list:
    """Run (resuming) every experiment's runs as one sweep on one executor, then decide every verdict.
    Follow-up passes run what the finished runs call for: phase 2 of two-phase lr sweeps and adaptive seeds.
    `max_minutes`: start no run after that long; the rest stays pending for the next invocation."""
    from archlab.experiments.analysis import analyze
    from archlab.experiments.executors import InlineExecutor, LocalExecutor
    from archlab.experiments.sweep import run_plans

    log = log or (lambda s: None)
    results, plans_of = [], {}
    for spec in specs:
        store.put_experiment(spec.name, spec.title, spec.spec_hash, spec.raw)
        if spec.kind != "cost":
            plans_of[spec.name] = plans_for(spec, profile, store)
    all_plans = [p for ps in plans_of.values() for p in ps]
    n_unique = len({p.run_key for p in all_plans})
    own = executor is None
    executor = executor or (InlineExecutor() if inline or jobs <= 0 else LocalExecutor(jobs))
    log(f"archlab claims ({profile}): {len(specs)} experiments, {len(all_plans)} runs ({n_unique} distinct), "
        f"on {executor.describe()}")
    t0 = time.perf_counter()
    deadline = None if max_minutes is None else t0 + 60.0 * max_minutes
    specs = list(specs)
    try:
        sweep = run_plans(all_plans, store, profile=profile, out_dir=out_dir, max_new_runs=max_new_runs, log=log,
                          executor=executor, progress=progress, max_minutes=max_minutes)
        analysed = {s.name: analyze(s, store, plans_of[s.name], profile) for s in specs if s.kind != "cost"}
        while not sweep.left and not sweep.interrupted and max_new_runs is None:  # follow-up passes
            grown = follow_ups(specs, analysed, plans_of, store, profile, log)
            if not grown:
                break
            left = None if deadline is None else max(1e-3, (deadline - time.perf_counter()) / 60.0)
            sweep.add(run_plans([p for n in grown for p in plans_of[n]], store, profile=profile, out_dir=out_dir,
                                log=log, executor=executor, progress=progress, max_minutes=left))
            analysed.update({n: analyze(s, store, plans_of[n], profile) for n, s in grown.items()})
    finally:
        if own:
            executor.close()
    log(f"{sweep.summary()} in {time.perf_counter() - t0:.0f}s")
    for spec in specs:
        if spec.kind == "cost":
            results.append(run_cost_checks(spec, store, profile))
        else:
            r = analysed[spec.name]
            r.sweep = sweep
            results.append(r)
    return results


def follow_ups(specs: list[ExperimentSpec], analysed: Mapping[str, Any], plans_of: dict[str, list], store: Store,
               profile: str, log: Callable[[str], None]) -> dict[str, ExperimentSpec]:
    """The specs whose finished runs call for more runs — phase 2 of a two-phase lr sweep, or adaptive seeds —
    with `specs` and `plans_of` updated in place to their new plans."""
    grown = {}
    for i, s in enumerate(specs):
        if s.kind == "cost":
            continue
        more = more_seeds(s, analysed.get(s.name), profile)
        if more:
            log(f"  [{s.name}] underpowered: adding seeds up to {more} (profile max_seeds)")
            specs[i] = s = with_seeds(s, profile, more)
        plans = plans_for(s, profile, store)
        ids = lambda ps: {(p.variant, p.seed, p.run_key) for p in ps}  # noqa: E731
        if ids(plans) != ids(plans_of[s.name]):
            grown[s.name], plans_of[s.name] = s, plans
    return grown


def more_seeds(spec: ExperimentSpec, result, profile: str) -> list[int] | None:
    """Adaptive seeds: when a comparison is 'inconclusive (underpowered)' and the profile sets `max_seeds`, the
    seeds that bring its minimum detectable effect (at the measured sd of the paired differences) down to m,
    capped at max_seeds; None when nothing is to be added. The decision looks at the spread, never at the
    effect, so adding seeds does not chase a verdict."""
    from archlab.experiments.verdict import mde_paired

    cap = int(spec.profile(profile).get("max_seeds", 0) or 0)
    seeds = spec.seeds_for(profile)
    if result is None or cap <= len(seeds):
        return None
    want = len(seeds)
    for c in result.comparisons:
        v = c.verdict
        if not (v.verdict == "inconclusive" and v.underpowered and v.n == len(seeds)):
            continue  # only a fully finished, underpowered comparison asks for more seeds
        n = next((k for k in range(len(seeds) + 1, cap + 1) if mde_paired(v.sd, k, spec.rule.alpha) <= v.min_effect),
                 cap)
        want = max(want, n)
    if want <= len(seeds):
        return None
    extra = [s for s in range(max(seeds) + 1, max(seeds) + 1 + 10 * cap) if s not in seeds][:want - len(seeds)]
    return seeds + extra


def with_seeds(spec: ExperimentSpec, profile: str, seeds: list[int]) -> ExperimentSpec:
    """The spec with a profile's seeds replaced (its hash and runs of the other seeds unchanged)."""
    import dataclasses

    return dataclasses.replace(spec, profiles={**spec.profiles, profile: {**spec.profile(profile), "seeds": seeds}})


def print_verdicts(results: Sequence[Any], log: Callable[[str], None] = print) -> None:
    """A plain-text verdict table, one line per claim."""
    width = max((len(r.spec.name) for r in results), default=10)
    vwidth = max((len(r.shown_verdict) for r in results), default=13)
    for r in results:
        detail = "; ".join(f"{c.label}: {c.verdict.label}" for c in r.comparisons) or "; ".join(
            f"{c['name']}: {c['verdict']}" for c in r.checks)
        log(f"{r.spec.name:<{width}}  {r.shown_verdict:<{vwidth}} {detail}")


# ---------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """One calibration spec and whether it reproduced its published result (all comparisons supported)."""

    spec: ExperimentSpec
    result: Any = None  # ExperimentResult, None when it could not even be resolved
    status: str = "not run"  # reproduced | not reproduced | not run | incomplete | broken
    detail: str = ""

    @property
    def reproduced(self) -> bool:
        return self.status == "reproduced"

    @property
    def mark(self) -> str:
        return "✔" if self.reproduced else "✗"

    @property
    def ours(self) -> str:
        """Our figure: the spec metric per variant (mean ± sd over seeds, at its best lr)."""
        r = self.result
        if r is None:
            return self.detail
        from archlab.experiments.stats import summarize

        parts = [f"{v} {summarize(r.values(v, self.spec.metric)).fmt()}" for v in self.spec.variants
                 if r.values(v, self.spec.metric)]
        return f"{self.spec.metric}: " + ", ".join(parts) if parts else "no finished runs"

    @property
    def paper(self) -> str:
        ref = self.spec.reference
        bits = [str(ref[k]) for k in ("paper", "figure", "expect") if ref.get(k)]
        return " — ".join(bits) or self.spec.notes[:200]


def calibration_status(result) -> tuple[str, str]:
    """(status, detail) of an analysed calibration: reproduced only when every comparison is supported."""
    if result.n_done == 0:
        return "not run", f"0 of {len(result.plans)} runs finished"
    labels = [c.verdict.label for c in result.comparisons]
    if all(c.verdict.verdict == "supported" for c in result.comparisons):
        return "reproduced", "; ".join(labels)
    missing = len(result.plans) - result.n_done
    if missing > 0:
        return "incomplete", f"{missing} of {len(result.plans)} run(s) not finished; " + "; ".join(labels)
    return "not reproduced", "; ".join(labels)


def calibrations(store: Store, profile: str, specs: Sequence[ExperimentSpec] | None = None,
                 results: Sequence[Any] = ()) -> list[Calibration]:
    """The state of every calibration at a profile, read from the store (nothing is run here); `results` are
    calibration results already analysed (from a `--calibrate` sweep) and used as they are."""
    from archlab.experiments.analysis import analyze

    have = {r.spec.name: r for r in results}
    out = []
    for spec in (calibration_specs() if specs is None else specs):
        r = have.get(spec.name)
        if r is None:
            try:
                r = analyze(spec, store, plans_for(spec, profile, store), profile)
            except ConfigError as e:
                out.append(Calibration(spec, None, "broken", str(e)))
                continue
        status, detail = calibration_status(r)
        out.append(Calibration(spec, r, status, detail))
    return out


def apply_calibrations(results: Sequence[Any], cals: Sequence[Calibration]) -> None:
    """Mark the verdicts of every training claim whose family has no reproduced calibration as uncalibrated
    (`result.calibration` says why); cost claims are computations and need none."""
    by_family: dict[str, list[Calibration]] = {}
    for c in cals:
        for f in c.spec.families:
            by_family.setdefault(f, []).append(c)
    for r in results:
        if r.spec.kind == "cost":
            continue
        fams = r.spec.families
        mine = [c for f in fams for c in by_family.get(f, [])]
        if not mine:
            r.calibration = f"no calibration covers family {', '.join(fams) or '(none)'}"
        elif not all(c.reproduced for c in mine):
            bad = [f"{c.spec.name}: {c.status}" for c in mine if not c.reproduced]
            r.calibration = "calibration " + "; ".join(bad)
        else:
            r.calibration = ""


def print_calibrations(cals: Sequence[Calibration], log: Callable[[str], None] = print) -> None:
    """The calibration table for the terminal (shown before the verdicts)."""
    if not cals:
        log("calibrations: none defined")
        return
    log("calibrations (a family's verdicts count only when its calibrations reproduce):")
    width = max(len(c.spec.name) for c in cals)
    known = {f for s in builtin_specs() for f in s.families}
    for c in cals:
        log(f"  {c.mark} {c.spec.name:<{width}}  {c.status:<15} family {c.spec.family or '-'}; ours: {c.ours}")
        if not set(c.spec.families) & known:
            log(f"    (family {c.spec.family!r} names no claim family {sorted(known)}: it calibrates nothing)")


# ---------------------------------------------------------------- a small live comparison (make demo)


def quick_comparison(base: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]], *, steps: int = 100,
                     seeds: Sequence[int] = (0,), metric: str = "val_loss", goal: str = "min", name: str = "demo",
                     quote: str = "", seed_ref: str = "", out_dir: str | Path = "runs/demo/comparison",
                     db: str | Path = ":memory:", jobs: int = 0, log: Callable[[str], None] | None = print):
    """Train `base` and each variant (dotted-key diffs) for `steps` steps per seed and print the comparison.

    Runs in this process when jobs=0. Returns the ExperimentResult (with verdicts, inconclusive for 1 seed).
    """
    from archlab.experiments.analysis import run_experiment

    spec = spec_from_dict({
        "name": name, "title": f"{name}: " + ", ".join(variants), "seed": seed_ref,
        "quote": quote or "a quick comparison", "base": dict(base),
        "variants": {"base": {}, **{k: dict(v) for k, v in variants.items()}},
        "seeds": list(seeds), "budget": {"steps": steps}, "metric": metric, "goal": goal,
        "compare": [{"variant": v, "baseline": "base", "expect": "worse"} for v in variants],
    })
    with Store(db) as store:
        res = run_experiment(spec, store, profile="quick", out_dir=out_dir, jobs=jobs, inline=jobs <= 0, log=None)
    if log:
        log(f"{'variant':<16} {'params':>9} {metric:>12}   (mean over {len(seeds)} seed(s), {steps} steps each)")
        params = {p.variant: p.n_params for p in res.plans}
        for v in spec.variants:
            vals = res.values(v, metric)
            shown = f"{sum(vals) / len(vals):.4f}" if vals else "failed"
            n = params.get(v)
            log(f"{v:<16} {n if n is not None else '-':>9} {shown:>12}")
    return res
