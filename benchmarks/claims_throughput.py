"""Where a claims run's wall time goes, per family, on the old path (a fresh process per run) and the new one (a
persistent pool worker), measured in the same invocation; and what that projects for --quick and --standard.

    nice .venv/bin/python benchmarks/claims_throughput.py [--steps 30] [--repeats 2] [--no-projection]

One quick-profile run of each family (its spec's first plan) is trained for `--steps` steps (short budgets, so the
benchmark takes minutes), its time split into phases by timing the trainer's own functions:
  start-up  process start + imports (driver-side wall − the run's own wall: ≈ 0 in a warm pool worker)
  data      building the task (reading / decompressing / tokenizing its data)   model  building the model
  steps     training steps (`steps/s` at the steady rate after the first 5 steps, whose excess is `warmup`
            and counts as fixed cost; and the share of the arithmetic bound: matmul FLOP/s measured here
            ÷ the FLOPs of one training step counted by torch's FlopCounterMode; the Mamba scan's elementwise
            work is not counted, so its bound is optimistic)
  eval      evaluations during training      write  run files and checkpoints      other  the rest (the
            train_split runner's re-evaluation on the training split, reading the curve, returning the result)
old = LocalExecutor (a fresh spawned process per run) with the code before the throughput work's step-level
changes (token_cross_entropy's masked copy of the logits; the eager chunked Mamba scan where the spec asks for
`mixer.ssm.scan: compiled`); new = PoolExecutor, the run's second run in a warm worker (its first run per worker
compiles the scan: `first` in the projection). The two runs' final metrics are compared: equal bit for bit where
the kernels are the same, within a printed relative tolerance where the compiled scan replaces the eager one.
`--compile` adds comp = the opt-in
`train.compile: true` in its own pool worker (its warm run; the first run of a shape compiles, printed), whose
finals are compared with new's within a tolerance (printed).

Projection: every distinct run of every built-in and calibration spec at a profile (phase 1 of two-phase lr
sweeps), mapped to the nearest family by runner / task / model; cost = fixed (start-up, data, model, write,
other) + evaluations × eval time + steps × the family's steady step time (the least disturbed of both paths'
measurements: the step code is the same, so the paths differ in fixed cost and evaluation, not per step); wall =
CPU time / 2 on 2 cores. Runs of no
family use the mean of the five. An estimate from one representative per family, not a measured sweep.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent / "src" / "archlab" / "experiments"
FAMILIES = {"cnn": "specs/01_cnn_order.yaml", "char_lm": "specs/09_no_positional_encoding.yaml",
            "mamba_text": "specs/29_mamba_selective_text.yaml",
            "synthetic": "calibration/mamba_selective_induction.yaml", "resnet": "calibration/he_degradation.yaml"}
PHASES = ("startup", "data", "model", "steps", "eval", "write", "other")
TIMING_KEYS = ("train_time_s", "tokens_per_s", "out_dir", "checkpoint")
_T: dict[str, float] = {}


_STEPS: list[float] = []  # each training step's wall time, in order
WARM = 5  # the first steps of a run pay one-off costs (allocations, kernel set-up): counted as fixed cost


def _timed(phase: str, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            dt = time.perf_counter() - t0
            _T[phase] = _T.get(phase, 0.0) + dt
            if phase == "steps":
                _STEPS.append(dt)
    wrapper.__wrapped_phase__ = True
    return wrapper


def _install(legacy: bool) -> None:
    from archlab.train import trainer

    for name, phase in (("build_task", "data"), ("build_model", "model"), ("_train_step", "steps"),
                        ("_eval", "eval"), ("_save", "write"), ("_write_run_files", "write")):
        fn = getattr(trainer, name)
        if not getattr(fn, "__wrapped_phase__", False):
            setattr(trainer, name, _timed(phase, fn))
    if legacy:  # (the eager scan is set in the old path's config, by legacy_config)
        import archlab.objectives.causal_lm as clm

        clm.token_cross_entropy = _legacy_token_cross_entropy


def _legacy_token_cross_entropy(logits, labels):
    """objectives.common.token_cross_entropy as it was before (always the masked copy, an explicit label check)."""
    import torch.nn.functional as F

    V = logits.shape[-1]
    flat_logits, flat_labels = logits.reshape(-1, V), labels.reshape(-1)
    valid = flat_labels != -100
    n = int(valid.sum())
    bad = valid & ((flat_labels < 0) | (flat_labels >= V))
    if bool(bad.any()):
        raise ValueError("label out of range")
    loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=-100)
    with torch.no_grad():
        acc = (flat_logits[valid].argmax(-1) == flat_labels[valid]).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(acc), "n_tokens": float(n)}


def legacy_config(cfg: dict) -> dict:
    """The config as the old path ran it: the eager chunked scan instead of the compiled one."""
    c = json.loads(json.dumps(cfg))
    if uses_compiled_scan(c):
        c["model"]["mixer"]["ssm"]["scan"] = "chunked"
    return c


def uses_compiled_scan(cfg: dict) -> bool:
    """Whether a resolved run config asks for the compiled scan (resolved configs are nested)."""
    return cfg.get("model", {}).get("mixer", {}).get("ssm", {}).get("scan") == "compiled"


def profiled(config: dict, seed: int, budget: dict, out_dir: str, *, runner: str, legacy: bool) -> dict:
    """Run `runner` with its phases timed (in whichever process executes it)."""
    from archlab.experiments.runs import resolve_run_fn

    _install(legacy)
    _T.clear()
    _STEPS.clear()
    t0 = time.perf_counter()
    out = resolve_run_fn(runner)(config, seed, budget, out_dir)
    phases = dict(_T)
    phases["other"] = time.perf_counter() - t0 - sum(phases.values())
    steady = _STEPS[WARM:] or _STEPS
    phases["per_step"] = statistics.mean(steady)
    phases["warmup"] = sum(_STEPS[:WARM]) - min(WARM, len(_STEPS)) * phases["per_step"]  # the excess only
    return {**out, "phases": phases}


def plan_of(family: str, steps: int):
    from archlab.experiments.runs import param_counter_for
    from archlab.experiments.spec import load_spec, resolve

    spec = load_spec(ROOT / FAMILIES[family])
    plan = resolve(spec, "quick", param_counter_for(spec.runner))[0]
    cfg = json.loads(json.dumps(plan.config))
    cfg["train"]["steps"] = steps
    return plan, cfg


def run_on(executor, plan, cfg: dict, steps: int, out: str, legacy: bool, times: int = 1) -> dict:
    """Submit the run `times` times on `executor`; the last one's phases, start-up and finals."""
    from archlab.experiments.sweep.executor_base import Task

    fn = functools.partial(profiled, runner=plan.runner, legacy=legacy)
    walls = []
    for i in range(times):
        t0 = time.perf_counter()
        executor.submit(Task(i, fn, cfg, plan.seed, {"steps": steps}, f"{out}/{i}"))
        got = []
        while not got:
            got = executor.poll(1.0)
        wall = time.perf_counter() - t0
        walls.append(wall)
        res = got[0].result
        if not res or not res["ok"]:
            raise RuntimeError(res.get("error") if res else got[0].lost)
    result = res["result"]
    phases = {"startup": wall - res["wall"], **result["phases"]}
    finals = {k: v for k, v in result["final"].items() if k not in TIMING_KEYS}
    return {"phases": phases, "total": wall, "first": walls[0], "finals": finals, "evals": _n_evals(cfg, steps)}


def _n_evals(cfg: dict, steps: int) -> int:
    every = int(cfg.get("train", {}).get("eval_every", 250) or 0)
    return (steps // every + (steps % every != 0)) if every else 1


def matmul_flops(n: int = 384, reps: int = 30) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def step_flops(plan, cfg: dict) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from archlab.experiments.runs.builtin import make_run_config
    from archlab.train import build_run

    data = {k: v for k, v in cfg.items() if k != "posthoc"}
    task, _, model = build_run(make_run_config(data, plan.seed), "cpu")
    batch = task.train_batch(0)
    with FlopCounterMode(display=False) as fc:
        loss, _ = task.loss(model, batch)
        loss.backward()
    return float(fc.get_total_flops())


def family_of(plan) -> str | None:
    """The benchmark family a run belongs to, by runner / task / model (None: no family)."""
    cfg = plan.config
    task, model = cfg.get("task", {}).get("name"), str(cfg.get("model", {}).get("preset", ""))
    if plan.runner == "train_split" or "resnet" in model:
        return "resnet"
    if task == "image_classification":
        return "cnn"
    if task == "synthetic":
        return "synthetic"
    if task == "causal_lm":
        return "mamba_text" if "mamba" in model else "char_lm"
    return None


def project(costs: dict[str, dict], profile: str) -> tuple[int, dict[str, float]]:
    """(distinct runs, {path: CPU seconds}) for a profile from each family's measured costs."""
    from archlab.experiments.runs import param_counter_for
    from archlab.experiments.spec import builtin_specs, calibration_specs, resolve

    plans, compiling = {}, []
    for spec in builtin_specs() + calibration_specs():
        if spec.kind != "cost":
            resolved = resolve(spec, profile, param_counter_for(spec.runner))
            for p in resolved:
                plans.setdefault(p.run_key, p)
            if any(uses_compiled_scan(p.config) for p in resolved):
                compiling.append(spec.name)
    total = {path: 0.0 for path in next(iter(costs.values()))}
    # the compiled scan's first compile, counted once per spec (≈ one shape) and worker, 2 workers
    compile_s = max((c["new"].get("compile", 0.0) for c in costs.values()), default=0.0)
    total["new"] += 2 * len(compiling) * compile_s
    for p in plans.values():
        steps = int(p.budget.get("steps", p.config.get("train", {}).get("steps", 0)) or 0)
        evals = _n_evals(p.config, steps)
        for path in total:
            fam = family_of(p)
            cs = [costs[fam][path]] if fam in costs else [c[path] for c in costs.values()]
            total[path] += statistics.mean(c["fixed"] + evals * c["per_eval"] + steps * c["step"] for c in cs)
    return len(plans), total


def summarise(r: dict) -> dict:
    """A run's cost model: fixed seconds (first steps' excess included), seconds per evaluation and per step."""
    ph = r["phases"]
    return {"fixed": sum(ph[k] for k in ("startup", "data", "model", "write", "other", "warmup")),
            "per_eval": ph.get("eval", 0.0) / r["evals"], "per_step": ph["per_step"]}


def main() -> None:
    from archlab.experiments.sweep.executors import LocalExecutor
    from archlab.experiments.sweep.pool import PoolExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--no-projection", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also the opt-in train.compile path (minutes per family: "
                    "the first run of a shape in a worker compiles, later ones reuse it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    peak = matmul_flops()
    print(f"matmul (384³ fp32, 1 thread): {peak / 1e9:.1f} GFLOP/s; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    paths = ("old", "new", "comp") if args.compile else ("old", "new")
    rows: dict[str, dict[str, list[dict]]] = {f: {p: [] for p in paths} for f in args.families}
    bound = {}
    with tempfile.TemporaryDirectory() as tmp, LocalExecutor(1) as old, PoolExecutor(1) as new, \
            PoolExecutor(1) as comp:
        for rep in range(args.repeats):
            for fam in args.families:
                plan, cfg = plan_of(fam, args.steps)
                rows[fam]["old"].append(run_on(old, plan, legacy_config(cfg), args.steps, f"{tmp}/{fam}-o{rep}",
                                               legacy=True))
                rows[fam]["new"].append(run_on(new, plan, cfg, args.steps, f"{tmp}/{fam}-n{rep}", legacy=False,
                                               times=1 if rep else 2))
                same = _compare_finals(fam, rows[fam]["old"][-1]["finals"], rows[fam]["new"][-1]["finals"],
                                       uses_compiled_scan(cfg))
                bound.setdefault(fam, peak / step_flops(plan, cfg))
                line = (f"  {fam} repeat {rep}: old {rows[fam]['old'][-1]['total']:.1f}s, new "
                        f"{rows[fam]['new'][-1]['total']:.1f}s"
                        + (f" (first in a worker {rows[fam]['new'][-1]['first']:.1f}s)" if not rep else "")
                        + f", {same}")
                if args.compile:
                    line += _compiled(comp, plan, cfg, args.steps, f"{tmp}/{fam}-c{rep}", rep, rows[fam])
                print(line, flush=True)
    costs = _table(rows, bound, args.steps, {f for f in args.families if uses_compiled_scan(plan_of(f, 1)[1])})
    if not args.no_projection:
        for profile in ("quick", "standard"):
            n, total = project(costs, profile)
            comp = (f"; compiled (warm workers, first compile per shape and worker not counted) "
                    f"{total['comp'] / 3600:.2f} h ({total['old'] / total['comp']:.2f}×)") if "comp" in total else ""
            print(f"{profile}: {n} distinct runs, CPU {total['old'] / 3600:.2f} h → {total['new'] / 3600:.2f} h "
                  f"({total['old'] / total['new']:.2f}×); wall on 2 cores ≈ {total['old'] / 7200:.2f} h → "
                  f"{total['new'] / 7200:.2f} h{comp}", flush=True)


def _compare_finals(fam: str, old: dict, new: dict, compiled_scan: bool) -> str:
    """'same finals' (bit for bit), or the largest relative difference where the compiled scan replaced the eager
    one (the tests bound one step's difference; over a run's steps it grows like any float reordering)."""
    if old == new:
        return "same finals"
    if not compiled_scan:
        raise SystemExit(f"{fam}: final metrics differ between the paths (same kernels: must be bit for bit)")
    diff = max(abs(new[k] - v) / max(abs(v), 1e-12) for k, v in old.items() if k in new)
    return f"finals within rel {diff:.1e} (compiled scan)"


def _compiled(executor, plan, cfg: dict, steps: int, out: str, rep: int, rows: dict) -> str:
    """The opt-in train.compile path in its own warm worker; its finals against the eager path's (a tolerance)."""
    c = json.loads(json.dumps(cfg))
    c["train"]["compile"] = True
    r = run_on(executor, plan, c, steps, out, legacy=False, times=1 if rep else 2)
    rows["comp"].append(r)
    ref = rows["new"][-1]["finals"]
    diff = max(abs(r["finals"][k] - v) / max(abs(v), 1e-12) for k, v in ref.items() if k in r["finals"])
    first = f" (first run, compiling: {r['first']:.0f}s)" if not rep else ""
    return f"; compiled {r['total']:.1f}s{first}, finals within rel {diff:.1e}"


def _table(rows: dict, bound: dict, steps: int, compiled_scan: set[str]) -> dict[str, dict]:
    """Print the per-family phase table (medians over repeats); return each family's cost model per path."""
    cols = (*PHASES, "warmup")
    print(f"\n{'family':<11} {'path':<4} " + " ".join(f"{p:>7}" for p in cols)
          + f" {'total':>7} {'steps/s':>8} {'bound':>7} {'of bound':>8}")
    costs = {}
    for fam, paths in rows.items():
        costs[fam] = {}
        for path, rs in paths.items():
            med = {p: statistics.median(r["phases"].get(p, 0.0) for r in rs) for p in (*cols, "per_step")}
            rate = 1.0 / med["per_step"]
            print(f"{fam:<11} {path:<4} " + " ".join(f"{med[p]:7.2f}" for p in cols)
                  + f" {statistics.median(r['total'] for r in rs):7.2f} {rate:8.1f} {bound[fam]:7.1f} "
                  f"{rate / bound[fam]:8.1%}")
            costs[fam][path] = summarise({"phases": med, "evals": rs[0]["evals"]})
        # without the compiled scan both paths run the same step code (the loss fix is ~0.2 % of a step): their steady
        # step times differ by load noise only, so the projection costs steps at the least disturbed figure for both
        step = min(r["phases"]["per_step"] for k in ("old", "new") for r in paths[k])
        for k, c in costs[fam].items():
            c["step"] = step if k != "comp" and fam not in compiled_scan else c["per_step"]
        if fam in compiled_scan:  # a worker compiles the scan once per shape: its first run's excess, per spec
            costs[fam]["new"]["compile"] = max(0.0, paths["new"][0]["first"] - paths["new"][0]["total"])
        o, n = (statistics.median(r["total"] for r in paths[k]) for k in ("old", "new"))
        so, sn = (1.0 / costs[fam][k]["per_step"] for k in ("old", "new"))
        more = ""
        if "comp" in paths:
            more = (f"; compiled/new: run {n / statistics.median(r['total'] for r in paths['comp']):.2f}×, steady "
                    f"steps/s {costs[fam]['new']['per_step'] / costs[fam]['comp']['per_step']:.2f}×")
        print(f"{'':<11} new/old: run {o / n:.2f}× faster, steady steps/s {sn / so:.2f}×{more}")
    print(f"(seconds per run, median of repeats; {steps} steps per run, `steps` includes `warmup`, the excess of the "
          f"first {WARM} steps over the steady rate; steps/s = the steady rate (after step {WARM}); one torch thread)")
    return costs


if __name__ == "__main__":
    main()
