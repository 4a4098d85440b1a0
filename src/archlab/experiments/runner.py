"""Run every variant × seed of an experiment, in parallel processes, resumably, into the results store.

A run function has the signature `run_fn(config, seed, budget, out_dir) -> {"final": {...}, "curve": [...]}`
(`curve` is a list of `{"step": s, metric: value, ...}`; an optional `"n_params"` is stored too).
Built-in run functions are named in RUN_FUNCTIONS; a spec may also name any `package.module:function`.
Each run executes in its own spawned process (`--jobs N` at a time); a run is identified by its
`run_key` (hash of resolved config, seed, budget, runner), so an interrupted sweep resumes by skipping
every run already marked done, and a run shared by two experiments (the same baseline) trains once.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from archlab.config import ConfigError, flatten
from archlab.experiments.spec import Comparison, ExperimentSpec, RunPlan, resolve
from archlab.experiments.stats import Verdict, combine, decide
from archlab.experiments.store import Store

RunFn = Callable[[dict, int, dict, str], dict]

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


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, Any]:
    """Versions that can change a result: archlab (and its git commit), torch, numpy, python."""
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for mod in ("archlab", "torch", "numpy"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just not reported
            pass
    try:
        root = Path(__file__).resolve().parents[3]
        out["git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=5).stdout.strip() or None
    except Exception:  # noqa: BLE001
        out["git"] = None
    return out


# ---------------------------------------------------------------- run functions


def toy_run(config: dict, seed: int, budget: dict, out_dir: str) -> dict:
    """A deterministic stand-in for training (tests, dry runs): loss = toy.quality + 1/(1+step/10) + noise."""
    toy = config.get("toy", {})
    quality, noise = float(toy.get("quality", 1.0)), float(toy.get("noise", 0.01))
    steps = int(budget.get("steps", config.get("train", {}).get("steps", 50)))
    ident = {**config, "toy": {k: v for k, v in toy.items() if k != "sleep"}}  # sleeping changes no number
    rng = random.Random(f"{seed}|{json.dumps(ident, sort_keys=True)}")
    if toy.get("sleep"):
        time.sleep(float(toy["sleep"]))
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
    from archlab.train.run_config import unflatten

    flat = flatten(dict(config.get("model", {})), keep_empty=True)
    cfg = model_config_from_dict(flat if "preset" in flat else unflatten(flat))
    with torch.device("meta"):
        model = build_model(cfg)
    return int(sum(p.numel() for p in model.parameters()))


# ---------------------------------------------------------------- executing runs


def _execute(runner: str | RunFn, config: dict, seed: int, budget: dict, out_dir: str, threads: int) -> dict:
    """Body of one run (in its own process): time it, catch its error, report versions."""
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except Exception:  # noqa: BLE001 - run functions that do not use torch still work
        pass
    t0 = time.perf_counter()
    try:
        fn = resolve_run_fn(runner)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        result = fn(config, seed, budget, out_dir)
        if not isinstance(result, Mapping) or "final" not in result:
            raise TypeError(f"run function {runner!r} must return a mapping with 'final' (and 'curve')")
        result = json.loads(json.dumps(result, default=float))  # only plain data crosses back
        return {"ok": True, "result": result, "wall": time.perf_counter() - t0, "versions": dict(versions())}
    except Exception:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return {"ok": False, "error": traceback.format_exc(), "wall": time.perf_counter() - t0}


@dataclass
class Sweep:
    """What one call of run_plans did."""

    ran: int = 0
    reused: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _threads_per_job(jobs: int) -> int:
    env = os.environ.get("ARCHLAB_THREADS")
    if env:
        return int(env)
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def run_plans(plans: list[RunPlan], store: Store, *, spec_hash: str = "", profile: str = "quick", out_dir: str | Path,
              jobs: int = 2, run_fn: str | RunFn | None = None, inline: bool = False,
              max_new_runs: int | None = None, log: Callable[[str], None] | None = print) -> Sweep:
    """Execute every plan not already done (resume), reusing finished runs with the same run key."""
    log = log or (lambda s: None)
    sweep = Sweep()
    todo: list[tuple[int, RunPlan]] = []
    for plan in plans:
        rid = store.ensure_run(experiment=plan.experiment, spec_hash=plan.spec_hash or spec_hash,
                               variant=plan.variant, seed=plan.seed,
                               run_key=plan.run_key, profile=profile, runner=str(plan.runner), config=plan.config,
                               budget=plan.budget, n_params=plan.n_params)
        row = store.run(rid)
        if row["status"] == "done":
            sweep.skipped += 1
            continue
        prev = store.done_run_with_key(plan.run_key)
        if prev is not None:  # the same run finished for another experiment (or an earlier spec version)
            store.finish_run(rid, {**store.result(prev["id"]), "n_params": prev.get("n_params")},
                             prev["wall_time_s"] or 0.0, json.loads(prev["versions_json"] or "{}"),
                             reused_from=prev["id"])
            sweep.reused += 1
            continue
        todo.append((rid, plan))
    if max_new_runs is not None:
        todo = todo[:max_new_runs]
    if not todo:
        return sweep
    root = Path(out_dir)
    threads = _threads_per_job(jobs)
    # two runs with the same key in this batch (e.g. a variant equal to the base) run once
    first_of: dict[str, int] = {}
    unique: list[tuple[int, RunPlan]] = []
    dupes: list[tuple[int, RunPlan]] = []
    for rid, plan in todo:
        if plan.run_key in first_of:
            dupes.append((rid, plan))
        else:
            first_of[plan.run_key] = rid
            unique.append((rid, plan))

    def record(rid: int, plan: RunPlan, out: dict) -> None:
        if out["ok"]:
            store.finish_run(rid, out["result"], out["wall"], out["versions"])
            sweep.ran += 1
            fin = out["result"].get("final", {})
            shown = ", ".join(f"{k}={v:.4g}" for k, v in list(fin.items())[:3] if isinstance(v, (int, float)))
            log(f"  [{plan.experiment}] {plan.variant} seed={plan.seed}: {shown} ({out['wall']:.1f}s)")
        else:
            store.fail_run(rid, out["error"], out["wall"])
            sweep.failed += 1
            last = out["error"].strip().splitlines()[-1] if out["error"].strip() else "error"
            sweep.errors.append(f"{plan.experiment}/{plan.variant}/seed{plan.seed}: {last}")
            log(f"  [{plan.experiment}] {plan.variant} seed={plan.seed}: FAILED: {last}")

    def dirs(plan: RunPlan) -> str:
        return str(root / "runs" / plan.run_key)

    if inline or jobs <= 0:
        for rid, plan in unique:
            store.mark_running(rid, dirs(plan))
            record(rid, plan, _execute(run_fn or plan.runner, plan.config, plan.seed, plan.budget, dirs(plan),
                                       threads))
    else:
        ctx = mp.get_context("spawn")
        ex = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1)
        pending = {}
        try:
            for rid, plan in unique:
                store.mark_running(rid, dirs(plan))
                fut = ex.submit(_execute, run_fn or plan.runner, plan.config, plan.seed, plan.budget, dirs(plan),
                                threads)
                pending[fut] = (rid, plan)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    rid, plan = pending.pop(fut)
                    try:
                        out = fut.result()
                    except Exception as e:  # noqa: BLE001 - a worker that died (OOM, kill) fails only its run
                        out = {"ok": False, "error": f"worker process died: {e!r}", "wall": 0.0}
                    record(rid, plan, out)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
    for rid, plan in dupes:
        prev = store.done_run_with_key(plan.run_key)
        if prev is not None:
            store.finish_run(rid, store.result(prev["id"]), prev["wall_time_s"] or 0.0,
                             json.loads(prev["versions_json"] or "{}"), reused_from=prev["id"])
            sweep.reused += 1
    return sweep


# ---------------------------------------------------------------- experiments and analysis


@dataclass
class ComparisonResult:
    """One comparison of a claim and its verdict."""

    comparison: Comparison
    verdict: Verdict

    @property
    def label(self) -> str:
        c = self.comparison
        return c.label or f"{c.variant} {c.expect} than {c.baseline}"


@dataclass
class ExperimentResult:
    """Everything a report needs about one experiment."""

    spec: ExperimentSpec
    profile: str
    plans: list[RunPlan]
    runs: dict[str, list[dict[str, Any]]]  # variant -> [{seed, final, curve, n_params, wall_time_s, status}]
    comparisons: list[ComparisonResult]
    verdict: str
    checks: list[dict[str, Any]] = field(default_factory=list)  # cost experiments
    sweep: Sweep | None = None

    def values(self, variant: str, metric: str) -> list[float]:
        return [r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]]


def analyze(spec: ExperimentSpec, store: Store, plans: list[RunPlan], profile: str) -> ExperimentResult:
    """Collect the finished runs of a plan list and decide every comparison of the spec."""
    rows = {(r["variant"], r["seed"], r["run_key"]): r for r in store.runs(spec.name)}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in spec.variants}
    for p in plans:
        r = rows.get((p.variant, p.seed, p.run_key))
        if r is None or r["status"] != "done":
            continue
        res = store.result(r["id"])
        runs.setdefault(p.variant, []).append({"seed": p.seed, "final": res["final"], "curve": res["curve"],
                                               "n_params": r["n_params"], "wall_time_s": r["wall_time_s"],
                                               "run_id": r["id"]})
    out = ExperimentResult(spec, profile, plans, runs, [], "inconclusive")
    for c in spec.compare:
        v = decide(out.values(c.variant, c.metric), out.values(c.baseline, c.metric), goal=c.goal, expect=c.expect,
                   alpha=spec.rule.alpha, min_effect=spec.rule.min_effect, relative=spec.rule.relative)
        not_learned = baseline_not_learned(spec.rule.learned, out.values(c.baseline, (spec.rule.learned or {}).get(
            "metric", c.metric)))
        if not_learned:
            v = replace(v, verdict="inconclusive", reason=f"{not_learned}; ({v.verdict} by the CI: {v.reason})")
        out.comparisons.append(ComparisonResult(c, v))
        store.put_verdict(spec.name, profile, out.comparisons[-1].label, v.verdict, v.as_dict())
    out.verdict = combine([c.verdict.verdict for c in out.comparisons])
    return out


def baseline_not_learned(learned: Mapping[str, Any] | None, values: list[float]) -> str:
    """Why the baseline did not learn the task ('' when it did, or when the spec sets no threshold)."""
    if not learned or not values:
        return ""
    mean = sum(values) / len(values)
    if "at_least" in learned and mean < float(learned["at_least"]):
        return f"baseline did not learn the task: {learned['metric']} {mean:.4g} < {learned['at_least']}"
    if "at_most" in learned and mean > float(learned["at_most"]):
        return f"baseline did not learn the task: {learned['metric']} {mean:.4g} > {learned['at_most']}"
    return ""


def run_experiment(spec: ExperimentSpec, store: Store, *, profile: str = "quick", out_dir: str | Path = "runs/claims",
                   jobs: int = 2, run_fn: str | RunFn | None = None, inline: bool = False,
                   param_counter: Callable[[Mapping[str, Any]], int] | None | str = "auto",
                   max_new_runs: int | None = None, log: Callable[[str], None] | None = print) -> ExperimentResult:
    """Resolve, run (resuming) and analyze one experiment."""
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
                      run_fn=run_fn, inline=inline, max_new_runs=max_new_runs, log=log)
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
