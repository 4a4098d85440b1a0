"""Estimate the claims suite's run time for a profile from measured CPU time per training step.

    nice .venv/bin/python benchmarks/claims_budget.py --profile standard [--jobs 2] [--probe 10,30] [--only a b]

Every built-in claim spec and calibration spec is resolved for the profile; runs shared between claims (same
run_key) count once. Runs are grouped by what sets their cost (runner, task, model shape — not lr or seed); one
representative per group is run in this process for `probe` steps (two lengths), timing *CPU* time
(`time.process_time`, one torch thread): per-step cost = the difference / the step difference, fixed cost (model
build, evaluation) = the rest. CPU time is what a run costs on an idle core, so the estimate does not depend on how
loaded the machine is while measuring. Each run also pays a fixed `--spawn` seconds (a fresh process importing
torch and archlab). Prints one line per group and the total / jobs as the wall-time estimate.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict

import torch


def shape_key(plan) -> str:
    cfg = json.loads(json.dumps(plan.config))
    train = cfg.get("train", {})
    for k in ("lr", "warmup_steps", "seed", "steps"):
        train.pop(k, None)
    cfg.pop("teacher_forcing", None) if cfg.get("teacher_forcing", {}).get("mode", "teacher") == "teacher" else None
    return json.dumps({"runner": plan.runner, "config": cfg}, sort_keys=True)


def cpu_time(run_fn, config, steps: int) -> float:
    cfg = json.loads(json.dumps(config))
    cfg.setdefault("train", {})["steps"] = steps  # the trainer reads its steps from the config, others the budget
    with tempfile.TemporaryDirectory() as d:
        t0 = time.process_time()
        run_fn(cfg, 0, {"steps": steps}, d)
        return time.process_time() - t0


def main() -> None:
    from archlab.experiments.runs import resolve_run_fn
    from archlab.experiments.runs.builtin import count_model_params, count_params
    from archlab.experiments.spec import builtin_specs, calibration_specs, resolve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--probe", default="10,30", help="two step counts to time each group at")
    ap.add_argument("--spawn", type=float, default=4.0, help="seconds per run to start a process (imports)")
    ap.add_argument("--only", nargs="*", help="claim names (default: all built-in and calibration specs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    s1, s2 = (int(x) for x in args.probe.split(","))
    specs = [s for s in builtin_specs() + calibration_specs() if s.kind != "cost"]
    if args.only:
        specs = [s for s in specs if s.name in args.only]
    plans = {}
    per_spec = defaultdict(set)
    for spec in specs:
        counter = count_params if spec.runner == "trainer" else count_model_params
        for p in resolve(spec, args.profile, counter):
            plans.setdefault(p.run_key, p)
            per_spec[spec.name].add(p.run_key)
    groups = defaultdict(list)
    for p in plans.values():
        groups[shape_key(p)].append(p)
    cost_of = {}
    total = 0.0
    for ps in sorted(groups.values(), key=lambda ps: ps[0].experiment):
        p = ps[0]
        fn = resolve_run_fn(p.runner)
        cfg = dict(p.config)
        a, b = cpu_time(fn, cfg, s1), cpu_time(fn, cfg, s2)
        per_step = max(b - a, 0.0) / (s2 - s1)
        fixed = max(a - s1 * per_step, 0.0)
        for q in ps:
            steps = int(q.budget.get("steps", 0))
            cost_of[q.run_key] = args.spawn + fixed + per_step * steps
        sub = sum(cost_of[q.run_key] for q in ps)
        total += sub
        print(f"{p.experiment:32s} {p.variant:22s} runs {len(ps):3d}  {per_step * 1000:7.1f} ms/step  fixed "
              f"{fixed:5.1f}s  steps {int(p.budget.get('steps', 0)):5d}  -> {sub / 60:6.1f} CPU-min", flush=True)
    print()
    for name in sorted(per_spec):
        print(f"  {name:34s} {len(per_spec[name]):3d} runs  {sum(cost_of[k] for k in per_spec[name]) / 60:6.1f} CPU-min"
              " (shared runs counted in every claim that uses them)")
    print(f"\n{len(plans)} distinct runs, {total / 3600:.2f} CPU-hours -> ≈ {total / args.jobs / 3600:.2f} h wall on "
          f"{args.jobs} cores ({args.profile} profile)")


if __name__ == "__main__":
    main()
