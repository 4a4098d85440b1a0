"""Run functions and the analysis of an experiment's runs (the sweep itself is archlab.experiments.sweep).

A run function has the signature `run_fn(config, seed, budget, out_dir) -> {"final": {...}, "curve": [...]}`
(`curve` is a list of `{"step": s, metric: value, ...}`; an optional `"n_params"` is stored too).
Built-in run functions are named in RUN_FUNCTIONS; a spec may also name any `package.module:function`.
`run_experiment` resolves a spec into runs, executes the pending ones on an executor (local processes or a
Ray cluster, archlab.experiments.executors) through the sweep driver, and decides the spec's verdicts.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from archlab.config import ConfigError, flatten
from archlab.experiments.executors import Executor, RunFn
from archlab.experiments.spec import Comparison, ExperimentSpec, RunPlan, resolve
from archlab.experiments.stats import Summary, summarize
from archlab.experiments.store import Store
from archlab.experiments.sweep import Sweep, run_plans
from archlab.experiments.verdict import PairedVerdict, _gate_report, _label, combine, decide_paired, holm

RUN_FUNCTIONS: dict[str, str] = {
    "trainer": "archlab.experiments.runner:trainer_run",
    "toy": "archlab.experiments.runner:toy_run",
    "teacher_forcing": "archlab.experiments.claims:teacher_forcing_run",
    "mask_leak": "archlab.experiments.claims:mask_leak_run",
}


def resolve_run_fn(ref: str | RunFn) -> RunFn:
    """A run function from a built-in name, a 'module:function' path, or a callable."""
    if callable(ref):
        return ref
    path = RUN_FUNCTIONS.get(ref, ref)
    if ":" not in path:
        raise ConfigError(f"runner={ref!r} is not a built-in run function ({sorted(RUN_FUNCTIONS)}) "
                          "nor a 'package.module:function' path")
    mod, fn = path.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"runner={ref!r}: cannot import {path} ({e})") from None


# ---------------------------------------------------------------- run functions


def toy_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """A deterministic stand-in for training (tests, dry runs): loss = toy.quality + 1/(1+step/10) + noise.

    `toy.seed_effect: S` adds S·g(seed), the same for every variant of a seed (what pairing by seed removes);
    `toy.lr_optimum: LR` adds (log10(train.lr / LR))² · 0.1 (so an lr sweep has a best point per variant).
    `toy.sleep` seconds make it slow; `toy.crash_once: PATH` kills its own process mid-run unless PATH exists
    (creating it), as a worker killed by the system would die. Neither changes a number.
    """
    toy = config.get("toy", {})
    quality, noise = float(toy.get("quality", 1.0)), float(toy.get("noise", 0.01))
    quality += float(toy.get("seed_effect", 0.0)) * random.Random(f"seed-effect|{seed}").gauss(0.0, 1.0)
    if toy.get("lr_optimum"):
        lr = float(config.get("train", {}).get("lr", toy["lr_optimum"]))
        quality += 0.1 * math.log10(lr / float(toy["lr_optimum"])) ** 2
    steps = int(budget.get("steps", config.get("train", {}).get("steps", 50)))
    ident = {**config, "toy": {k: v for k, v in toy.items() if k not in ("sleep", "crash_once")}}
    rng = random.Random(f"{seed}|{json.dumps(ident, sort_keys=True)}")
    if toy.get("sleep"):
        time.sleep(float(toy["sleep"]))
    if toy.get("crash_once") and not Path(toy["crash_once"]).exists():
        Path(toy["crash_once"]).write_text(str(os.getpid()))
        os._exit(17)
    curve, loss = [], math.nan
    for step in range(0, steps + 1, max(1, steps // 10)):
        loss = quality + 1.0 / (1.0 + step / 10.0) + noise * rng.gauss(0.0, 1.0)
        curve.append({"step": step, "train_loss": loss})
    final = {"val_loss": loss + noise * rng.gauss(0.0, 1.0), "train_loss": loss}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return {"final": final, "curve": curve, "n_params": int(toy.get("params", 1000))}


def read_jsonl_curve(path: str | Path) -> list[dict[str, Any]]:
    """Curve points from the trainer's metrics JSONL: train records give train_loss, eval records val_*."""
    pts: dict[int, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or "step" not in rec:
            continue
        kind = rec.get("kind", "train")
        pt = pts.setdefault(int(rec["step"]), {"step": int(rec["step"])})
        for k, v in rec.items():
            if k in ("step", "kind", "tokens", "tokens_per_s", "lr") or not isinstance(v, (int, float)) \
                    or isinstance(v, bool):
                continue
            if kind == "eval":
                pt[f"val_{k}"] = v
            elif kind == "train":
                pt["train_loss" if k == "loss" else k] = v
            else:
                pt[f"{kind}_{k}"] = v
    return [pts[k] for k in sorted(pts)]


def trainer_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """Train through archlab.train (the shared trainer); return its final metrics and logged curve.

    An optional `posthoc: {NAME: {model.dotted.key: value}}` section re-evaluates the trained weights in
    a changed model (e.g. the causal mask switched back on) and reports NAME_<metric> for each.
    """
    from archlab.train import train

    config = dict(config)
    posthoc = config.pop("posthoc", None) or {}
    run_cfg = make_run_config(config, seed)
    final = train(run_cfg, out_dir, resume=False, progress=False, overwrite=True)
    curve = read_jsonl_curve(Path(out_dir) / "metrics.jsonl")
    final = {k: v for k, v in dict(final or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for name, overrides in posthoc.items():
        final.update({f"{name}_{k}": v for k, v in posthoc_eval(config, seed, out_dir, overrides).items()})
    return {"final": final, "curve": curve, "n_params": final.get("n_params")}


def posthoc_eval(config: Mapping[str, Any], seed: int, out_dir: str, overrides: Mapping[str, Any]) -> dict:
    """Validation metrics of a trained run's final weights loaded into the model with `overrides` applied."""
    import torch

    from archlab.train import build_run, load_checkpoint
    from archlab.train.checkpoint import latest_checkpoint

    data = json.loads(json.dumps(dict(config)))
    for k, v in flatten(overrides).items():  # {model.attn.causal: true} may arrive nested by the spec loader
        section, _, rest = k.partition(".")
        if section != "model" or not rest:
            raise ConfigError(f"posthoc override {k!r} must start with 'model.'")
        data.setdefault("model", {})[rest] = v
    task, _, model = build_run(make_run_config(data, seed), "cpu")
    load_checkpoint(latest_checkpoint(out_dir), model)
    model.eval()
    with torch.no_grad():
        return {k: float(v) for k, v in task.evaluate(model, "val").items()}


def make_run_config(config: Mapping[str, Any], seed: int):
    """archlab.train.RunConfig from a plain nested mapping plus the seed (no plots, quiet)."""
    from archlab.train import run_config_from_dict

    data = json.loads(json.dumps(config))
    data.pop("posthoc", None)
    data.setdefault("train", {})["seed"] = int(seed)
    data["train"].setdefault("plot", False)
    return run_config_from_dict(data)


_TASK_OVERRIDES: dict[str, dict] = {}


def task_model_overrides(config: Mapping[str, Any]) -> dict:
    """The model fields a run's task imposes (vocab size, classes), computed once per task section."""
    key = json.dumps({"task": config.get("task"), "seed": 0}, sort_keys=True)
    if key not in _TASK_OVERRIDES:
        try:
            from archlab.tasks import build_task

            task = build_task(make_run_config(config, 0))
            _TASK_OVERRIDES[key] = task.model_overrides() if hasattr(task, "model_overrides") else {}
        except ImportError:
            _TASK_OVERRIDES[key] = {}
    return _TASK_OVERRIDES[key]


def count_params(config: Mapping[str, Any]) -> int:
    """Parameter count of the model a trainer run config builds (meta device: nothing is allocated)."""
    import torch

    from archlab.models import build_model

    run_cfg = make_run_config(config, 0)
    model_cfg = run_cfg.model_config(task_model_overrides(config))
    with torch.device("meta"):
        model = build_model(model_cfg)
    return int(sum(p.numel() for p in model.parameters()))


def count_model_params(config: Mapping[str, Any]) -> int:
    """Parameter count of the `model` section alone (for run functions that do not use a trainer task)."""
    import torch

    from archlab.models import build_model, model_config_from_dict
    from archlab.dotted import unflatten

    flat = flatten(dict(config.get("model", {})), keep_empty=True)
    cfg = model_config_from_dict(flat if "preset" in flat else unflatten(flat))
    with torch.device("meta"):
        model = build_model(cfg)
    return int(sum(p.numel() for p in model.parameters()))


# ---------------------------------------------------------------- experiments and analysis


@dataclass
class ComparisonResult:
    """One comparison of a claim, its per-seed values (each arm at its own best lr) and its verdict."""

    comparison: Comparison
    verdict: PairedVerdict
    variant_values: dict[int, float] = field(default_factory=dict)
    baseline_values: dict[int, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        c = self.comparison
        return c.label or f"{c.variant} {c.expect} than {c.baseline}"

    @property
    def variant(self) -> Summary:
        return summarize(list(self.variant_values.values()))

    @property
    def baseline(self) -> Summary:
        return summarize(list(self.baseline_values.values()))


@dataclass
class ExperimentResult:
    """Everything a report needs about one experiment."""

    spec: ExperimentSpec
    profile: str
    plans: list[RunPlan]
    runs: dict[str, list[dict[str, Any]]]  # variant -> [{seed, final, curve, n_params, wall_time_s, lr, code_hash}]
    comparisons: list[ComparisonResult]
    verdict: str
    checks: list[dict[str, Any]] = field(default_factory=list)  # cost experiments
    sweep: Sweep | None = None
    best_lr: dict[str, float | None] = field(default_factory=dict)  # the lr each variant is judged at
    lr_table: dict[str, dict[float, tuple[float, int]]] = field(default_factory=dict)  # variant -> lr -> (mean, n)
    calibration: str = ""  # '' (not a calibrated family / not asked) or why the verdict is shown as uncalibrated
    n_done: int = 0  # finished runs among `plans` (every lr of a sweep)

    def values(self, variant: str, metric: str) -> list[float]:
        return [r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]]

    def by_seed(self, variant: str, metric: str) -> dict[int, float]:
        return {r["seed"]: r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]}

    @property
    def code_hashes(self) -> list[str]:
        return sorted({r.get("code_hash") or "?" for runs in self.runs.values() for r in runs})

    @property
    def shown_verdict(self) -> str:
        """The verdict as a report prints it: 'uncalibrated (supported)' when the family's calibration failed."""
        return f"uncalibrated ({self.verdict})" if self.calibration else self.verdict


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


def analyze(spec: ExperimentSpec, store: Store, plans: list[RunPlan], profile: str) -> ExperimentResult:
    """Collect the finished runs of a plan list, judge each variant at its best lr (lr_sweep) and decide every
    comparison of the spec by the paired, gated rule with Holm correction (archlab.experiments.verdict)."""
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


def run_experiment(spec: ExperimentSpec, store: Store, *, profile: str = "quick", out_dir: str | Path = "runs/claims",
                   jobs: int = 2, run_fn: str | RunFn | None = None, inline: bool = False,
                   param_counter: Callable[[Mapping[str, Any]], int] | None | str = "auto",
                   max_new_runs: int | None = None, log: Callable[[str], None] | None = print,
                   executor: Executor | None = None, progress: bool = False) -> ExperimentResult:
    """Resolve, run (resuming) and analyze one experiment (on `executor`, default `jobs` local processes)."""
    store.put_experiment(spec.name, spec.title, spec.spec_hash, spec.raw)
    if spec.kind == "cost":
        from archlab.experiments.claims import run_cost_checks

        return run_cost_checks(spec, store, profile)
    counter: Callable[[Mapping[str, Any]], int] | None
    if param_counter == "auto":
        fake = spec.runner == "toy" or (run_fn is not None and not isinstance(run_fn, str))
        counter = None if fake else count_params if spec.runner == "trainer" else count_model_params
    else:
        counter = param_counter  # type: ignore[assignment]
    plans = resolve(spec, profile, counter)
    sweep = run_plans(plans, store, spec_hash=spec.spec_hash, profile=profile, out_dir=out_dir, jobs=jobs,
                      run_fn=run_fn, inline=inline, max_new_runs=max_new_runs, log=log, executor=executor,
                      progress=progress)
    result = analyze(spec, store, plans, profile)
    result.sweep = sweep
    return result


def config_hash(config: Mapping[str, Any]) -> str:
    """Short hash of a config (for display)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


if __name__ == "__main__":  # pragma: no cover - `python -m archlab.experiments.runner SPEC` for debugging
    from archlab.experiments.spec import load_spec

    s = load_spec(sys.argv[1])
    with Store(sys.argv[2] if len(sys.argv) > 2 else ":memory:") as st:
        r = run_experiment(s, st, jobs=1, inline=True)
        print(r.verdict, [(c.label, c.verdict.verdict) for c in r.comparisons])
