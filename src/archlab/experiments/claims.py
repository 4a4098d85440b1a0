"""The built-in claims suite: run every seed claim (specs/*.yaml), decide verdicts, write the report.

Calibrations (calibration/*.yaml, `archlab claims --calibrate`) reproduce published results whose direction is
known; a claim family whose calibration was not run or did not reproduce has its verdicts shown as
"uncalibrated (<verdict>)" (`apply_calibrations`).

Also here: the special run functions some claims need (teacher forcing vs free running), the cost
checks that verify seed 003's numbers with archlab.cost instead of training, and `quick_comparison`,
the small live comparison `archlab demo` ends with.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.spec import ExperimentSpec, builtin_specs, calibration_specs, resolve, spec_from_dict
from archlab.experiments.store import Store
from archlab.experiments.verdict import combine

# ---------------------------------------------------------------- cost claims (no training)


def _conv_macs(layer: Mapping[str, Any]) -> int:
    """MACs of one conv layer given as {H, W, C, M, R[, S, U, padding, groups]} via archlab.cost."""
    from archlab.cost.analytic import conv2d_macs, conv_out_size

    h, w, c, m = int(layer["H"]), int(layer.get("W", layer["H"])), int(layer["C"]), int(layer["M"])
    r = int(layer["R"])
    s = int(layer.get("S", r))
    u = int(layer.get("U", 1))
    pad = int(layer.get("padding", r // 2))
    e, f = conv_out_size(h, r, u, pad), conv_out_size(w, s, u, pad)
    return conv2d_macs(int(layer.get("N", 1)), c, m, r, s, e, f, int(layer.get("groups", 1)))


def _check_value(check: Mapping[str, Any]) -> float:
    """The figure a cost check computes: the MACs of a layer list, a ratio of two lists, or a formula."""
    if "layers" in check:
        return float(sum(_conv_macs(layer) for layer in check["layers"]))
    if "ratio" in check:
        num = sum(_conv_macs(layer) for layer in check["ratio"]["numerator"])
        den = sum(_conv_macs(layer) for layer in check["ratio"]["denominator"])
        return num / den
    if "formula" in check:
        from archlab.cost import analytic

        fn = getattr(analytic, str(check["formula"]), None)
        if fn is None:
            raise ConfigError(f"cost check {check.get('name')!r}: archlab.cost.analytic has no {check['formula']!r}")
        return float(fn(**check.get("args", {})))
    raise ConfigError(f"cost check {check.get('name')!r} needs 'layers', 'ratio' or 'formula'")


def run_cost_checks(spec: ExperimentSpec, store: Store, profile: str = "quick"):
    """Verify a cost claim: each check's computed figure against the seed's number (within tolerance),
    or against another check (`less_than: NAME`). The claim's verdict combines the checks marked primary."""
    from archlab.experiments.runner import ExperimentResult

    values: dict[str, float] = {}
    checks: list[dict[str, Any]] = []
    for chk in spec.checks:
        name = str(chk["name"])
        v = _check_value(chk)
        values[name] = v
        row: dict[str, Any] = {"name": name, "computed": v, "unit": chk.get("unit", "MACs"),
                               "primary": bool(chk.get("primary", True)), "explain": chk.get("explain", "")}
        if "claimed" in chk:
            claimed = float(chk["claimed"])
            rel = abs(v - claimed) / abs(claimed) if claimed else abs(v)
            row.update(claimed=claimed, rel_error=rel,
                       verdict="supported" if rel <= float(chk.get("tolerance", 0.005)) else "contradicted")
        elif "less_than" in chk:
            other = values[str(chk["less_than"])]
            row.update(claimed=other, rel_error=v / other if other else math.nan,
                       verdict="supported" if v < other else "contradicted")
            row["explain"] = row["explain"] or f"{v:.4g} < {other:.4g} ({chk['less_than']})"
        else:
            raise ConfigError(f"{spec.name}: cost check {name!r} needs 'claimed' or 'less_than'")
        checks.append(row)
        store.put_verdict(spec.name, profile, name, row["verdict"], row)
    verdict = combine([c["verdict"] for c in checks if c["primary"]])
    return ExperimentResult(spec, profile, [], {}, [], verdict, checks=checks)


# ---------------------------------------------------------------- teacher forcing vs free running


def teacher_forcing_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Sequence reversal trained by the one trainer (task `transduction`, archlab.tasks.transduction);
    exact-match greedy generation on 256 held-out sequences, the task's evaluation.

    `teacher_forcing.mode` — teacher: the decoder's inputs are the gold previous tokens (seed 000/004's
    shifted targets); free: its inputs are its own greedy outputs (generated without gradient), targets gold;
    scheduled: each input token is its own output with probability `sampling_prob`.
    The model's `shape` picks how the same task is posed: decoder (one stream [BOS src SEP tgt]),
    encoder_decoder (src to the encoder, [SEP tgt] to the decoder), encoder (bidirectional over
    [BOS src SEP MASK…], every target predicted at once — BERT-style, no autoregression).
    AdamW at a constant lr without weight decay, betas (0.9, 0.999), gradients clipped at 1, unless `train` says.
    """
    from archlab.experiments.runner import trainer_run

    steps = int(budget.get("steps", config.get("train", {}).get("steps", 300)))
    run = {k: v for k, v in config.items() if k != "teacher_forcing"}
    run["task"] = {"length": 8, "vocab": 12, **config.get("task", {}), **config.get("teacher_forcing", {}),
                   "name": "transduction", "kind": "reversal"}
    run["train"] = {"batch_size": 32, "lr": 3e-3, "schedule": "constant", "weight_decay": 0.0, "betas": [0.9, 0.999],
                    "grad_clip": 1.0, "eval_every": 0, "checkpoint_every": 0, "log_every": max(1, steps // 20),
                    "device": "cpu", **config.get("train", {}), "steps": steps}
    out = trainer_run(run, seed, budget, out_dir)
    out["final"] = {k.removeprefix("val_") if k.startswith("val_gen_") else k: v for k, v in out["final"].items()}
    return out


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


def plans_for(spec: ExperimentSpec, profile: str):
    """The runs of a training spec for a profile (parameter counts matched as its runner needs)."""
    from archlab.experiments.runner import count_model_params, count_params

    counter = count_params if spec.runner == "trainer" else None if spec.runner == "toy" else count_model_params
    return resolve(spec, profile, counter)


def run_suite(specs: Sequence[ExperimentSpec], store: Store, *, profile: str = "quick", out_dir: str | Path,
              jobs: int = 2, inline: bool = False, max_new_runs: int | None = None,
              log: Callable[[str], None] | None = print, executor=None, progress: bool = False,
              max_minutes: float | None = None) -> list:
    """Run (resuming) every experiment's runs as one sweep on one executor, then decide every verdict.
    `max_minutes`: start no run after that long; the rest stays pending for the next invocation."""
    from archlab.experiments.executors import InlineExecutor, LocalExecutor
    from archlab.experiments.runner import analyze
    from archlab.experiments.sweep import run_plans

    log = log or (lambda s: None)
    results, plans_of = [], {}
    all_plans = []
    for spec in specs:
        store.put_experiment(spec.name, spec.title, spec.spec_hash, spec.raw)
        if spec.kind == "cost":
            continue
        plans_of[spec.name] = plans_for(spec, profile)
        all_plans += plans_of[spec.name]
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
        while not sweep.left and not sweep.interrupted and max_new_runs is None:  # adaptive seeds
            grown = {}
            for i, s in enumerate(specs):
                more = more_seeds(s, analysed.get(s.name), profile)
                if more:
                    specs[i] = grown[s.name] = with_seeds(s, profile, more)
            if not grown:
                break
            left = None if deadline is None else max(1e-3, (deadline - time.perf_counter()) / 60.0)
            for name, s in grown.items():
                log(f"  [{name}] underpowered: adding seeds up to {s.seeds_for(profile)} (profile max_seeds)")
                plans_of[name] = plans_for(s, profile)
            more_sweep = run_plans([p for n in grown for p in plans_of[n]], store, profile=profile, out_dir=out_dir,
                                   log=log, executor=executor, progress=progress, max_minutes=left)
            for k in ("ran", "reused", "failed", "retried", "interrupted", "left"):
                setattr(sweep, k, getattr(sweep, k) + getattr(more_sweep, k))
            sweep.errors += more_sweep.errors
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
    from archlab.experiments.runner import analyze

    have = {r.spec.name: r for r in results}
    out = []
    for spec in (calibration_specs() if specs is None else specs):
        r = have.get(spec.name)
        if r is None:
            try:
                r = analyze(spec, store, plans_for(spec, profile), profile)
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
    from archlab.experiments.runner import run_experiment

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
