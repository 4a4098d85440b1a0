"""What `archlab claims` and `archlab experiment` share: their options (profile, budget, time limit, where runs
execute, output) and the one flow both follow — run the specs through archlab.experiments.engine.run_specs, read
the calibrations of the families that ran, print the verdicts, write the report."""
from __future__ import annotations

import shlex
import sys

from archlab.commands._sweep_args import (  # noqa: F401  (re-exported)
    Job,
    add_executor_args,
    add_run_args,
    check_args,
    profile_of,
)
from archlab.experiments.engine import RunOptions, run_specs, with_steps
from archlab.experiments.judge.budget import check_budgets
from archlab.experiments.judge.raw import write_raw
from archlab.experiments.report.html import SMOKE, write_report
from archlab.experiments.spec.registration import load_registry, status_of
from archlab.experiments.suite.calibration import apply_calibrations, calibrations, print_calibrations
from archlab.experiments.suite.claims import print_verdicts
from archlab.experiments.sweep.executors import make_executor
from archlab.experiments.sweep.store import Store


def executor_from_args(args):
    """The executor the options ask for (a context manager: closing it stops a Ray instance it started)."""
    return make_executor(args.executor, jobs=args.jobs, ray_address=args.ray_address,
                         cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)


def run_job(args, job: Job) -> int:
    """Run the job's specs through the one engine, print calibrations and verdicts, write the report; exit 1 when
    any run failed, or a training experiment has no finished run (after the summary and the report)."""
    check_args(args)
    profile = profile_of(args)
    smoke = profile == "quick" or args.steps is not None
    label = f"{profile}{', ' + SMOKE if smoke else ''}"
    if args.steps is not None:
        label += f", {args.steps} steps per run: verdicts meaningless"
    print(f"archlab {job.what}, profile {label}")
    options = RunOptions(profile=profile, out_dir=job.out, steps=args.steps, max_minutes=args.max_minutes,
                         progress=True)
    cal_specs = [with_steps(s, args.steps) for s in job.cal_specs] if args.steps is not None else job.cal_specs
    with Store(job.db) as store:
        with executor_from_args(args) as executor:
            results = run_specs(job.specs, store, executor, options)
        annotate(results, job)
        families = {f for s in job.specs for f in s.families}
        cal_specs = cal_specs if job.calibrate else [s for s in cal_specs if set(s.families) & families]
        cals = calibrations(store, profile, cal_specs, results if job.calibrate else ())
    if not job.calibrate:
        apply_calibrations(results, cals)
    _print(results, cals, job, smoke, profile)
    raw = write_raw(results, job.out / "calibration" if job.calibrate else job.out)  # calibrations: their own runs
    print(f"raw data: {raw['csv']} (every run's final metrics; `archlab claims --recompute` re-derives the verdicts)")
    if not args.no_report:
        _report(args, job, results, cals, label, smoke, profile)
    failed = max((r.sweep.failed for r in results if r.sweep is not None), default=0)
    empty = sum(len(r.runs) == 0 and r.spec.kind == "train" for r in results)
    if failed:
        print(f"archlab {job.what}: {failed} run(s) failed (their errors are in the summary above); exit status 1")
    return 1 if failed or empty else 0


def annotate(results, job: Job) -> None:
    """Each result's registration status (of the spec as the job gave it, before any adaptive seeds) and its
    verdict re-decided at half the budget (judge.budget)."""
    registry = load_registry(job.registration)
    given = {s.name: s for s in job.specs}
    for r in results:
        status = status_of(given.get(r.spec.name, r.spec), registry)
        r.registration, r.pre_registered = status.text, status.pre_registered
    check_budgets(results)


def _print(results, cals, job: Job, smoke: bool, profile: str) -> None:
    print()
    print_calibrations(cals)
    print()
    if not job.calibrate:
        print_verdicts(results)
    if smoke:
        print(f"\n{SMOKE}: the {profile} profile's verdicts are not findings (--standard gives those)")
    sweep = next((r.sweep for r in results if r.sweep is not None), None)
    if sweep is not None and sweep.left:
        print(f"\n{sweep.left} run(s) still pending (--max-minutes reached): run the same command again to continue")


def _report(args, job: Job, results, cals, label: str, smoke: bool, profile: str) -> None:
    cmd = "archlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] in (["claims"], ["experiment"]) \
        else f"archlab {job.what.split()[0]} --{profile}"
    out = job.out / "calibration" if job.calibrate else job.out
    paths = write_report([] if job.calibrate else results, out, title=f"archlab {job.what} ({label})", command=cmd,
                         calibrations=cals, smoke=smoke)
    print(f"\nreport: {paths['html']}  (markdown: {paths['md']}; results database: {job.db})")
