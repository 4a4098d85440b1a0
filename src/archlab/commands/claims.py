"""`archlab claims`: run the built-in claims suite (one experiment per seed claim) and write the report."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from archlab.commands._sweep import add_executor_args, executor_from_args


def add_parser(sub):
    p = sub.add_parser(
        "claims", help="test every seed claim with controlled experiments and write a verdict report",
        description="Run the built-in claims suite: each claim of the seeds (CNN order, Transformer ablations, "
        "Mamba ablations, sequence-mixer expressiveness, seed 003's cost numbers) becomes a controlled experiment "
        "(variants × seeds at an equal budget), stored in SQLite and decided supported / contradicted / "
        "inconclusive by a stated rule. Interrupted sweeps resume where they stopped.")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke test — indicative only: tiny models, short "
                      "budgets (default; at most about 20 minutes on 2 CPU cores)")
    size.add_argument("--standard", action="store_true", help="the profile whose verdicts the docs quote: models "
                      "and budgets where each claim's mechanism shows, lr sweeps (hours on 2 CPU cores; resumable: "
                      "stop with Ctrl-C or --max-minutes and run the same command again to continue)")
    size.add_argument("--full", action="store_true", help="the serious run: bigger models, longer, 5 seeds (GPU)")
    p.add_argument("--calibrate", action="store_true", help="run the calibrations (published results of known "
                   "direction, reproduced at small scale) instead of the claims; a claims report marks a family "
                   "whose calibration did not reproduce (or was not run at that profile) as uncalibrated")
    p.add_argument("--max-minutes", type=float, metavar="N", help="start no run after N minutes; the runs in "
                   "progress finish, the rest stay pending and the same command continues with them")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these claims (or families: cnn, transformer, "
                   "mamba, mixers, cost)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--steps", type=int, metavar="N", help="a smoke run: every training run takes N steps instead "
                   "of its budget (the verdicts then mean nothing; for checking the set-up)")
    p.add_argument("--out", default="runs/claims", help="output directory for runs and the report")
    p.add_argument("--db", default=None, help="SQLite results database (default OUT/claims.sqlite)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML/Markdown report")
    add_executor_args(p)
    return p


def run(args) -> int:
    from archlab.experiments.claims import print_calibrations, print_verdicts, select_specs
    from archlab.experiments.report import SMOKE, write_report
    from archlab.experiments.spec import calibration_specs

    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
    cal_specs = calibration_specs()
    specs = select_specs(args.only, cal_specs if args.calibrate else None)
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be ≥ 1, got {args.steps}")
        specs = [with_steps(s, args.steps) for s in specs]
    if args.list:
        for s in specs:
            seeds = ",".join(q.seed for q in s.quotes)
            print(f"{s.name:<28} {s.family:<12} seed {seeds:<8} {s.title}")
        return 0
    profile = "full" if args.full else "standard" if args.standard else "quick"
    smoke = profile == "quick" or args.steps is not None
    out = Path(args.out)
    db = args.db or str(out / "claims.sqlite")
    what = "calibrations" if args.calibrate else "claims"
    label = f"{profile}{', ' + SMOKE if smoke else ''}"
    if args.steps is not None:
        label += f", {args.steps} steps per run: verdicts meaningless"
    print(f"archlab claims: {what}, profile {label}")
    results, cals, sweep = _run(args, specs, cal_specs, profile, out, db)
    print()
    print_calibrations(cals)
    print()
    if not args.calibrate:
        print_verdicts(results)
    if smoke:
        print(f"\n{SMOKE}: the {profile} profile's verdicts are not findings (--standard gives those)")
    if sweep is not None and sweep.left:
        print(f"\n{sweep.left} run(s) still pending (--max-minutes reached): run the same command again to continue")
    if not args.no_report:
        cmd = "archlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["claims"] else \
            f"archlab claims --{profile}"
        title = f"archlab {what} ({label})"
        paths = write_report([] if args.calibrate else results, out / "calibration" if args.calibrate else out,
                             title=title, command=cmd, calibrations=cals, smoke=smoke)
        print(f"\nreport: {paths['html']}  (markdown: {paths['md']}; results database: {db})")
    failed = sum(len(r.runs) == 0 and r.spec.kind == "train" for r in results)
    return 1 if failed else 0


def _run(args, specs, cal_specs, profile, out, db):
    """Run the claims (or, with --calibrate, the calibrations); read every calibration's state from the store."""
    from archlab.experiments.claims import apply_calibrations, calibrations, run_suite
    from archlab.experiments.store import Store

    with Store(db) as store:
        with executor_from_args(args) as executor:
            results = run_suite(specs, store, profile=profile, out_dir=out, executor=executor, progress=True,
                                max_minutes=args.max_minutes)
        sweep = next((r.sweep for r in results if r.sweep is not None), None)
        if args.steps is not None and not args.calibrate:
            cal_specs = [with_steps(s, args.steps) for s in cal_specs]
        cals = calibrations(store, profile, cal_specs, results if args.calibrate else ())
    if not args.calibrate:
        apply_calibrations(results, cals)
    return results, cals, sweep


def with_steps(spec, steps: int):
    """The spec with every profile's budget set to `steps` steps (its hash changes, so its runs are separate)."""
    import dataclasses

    profiles = {k: {**v, "budget": {"steps": steps}} for k, v in spec.profiles.items()}
    raw = {**spec.raw, "budget": {"steps": steps}, "profiles": profiles}
    return dataclasses.replace(spec, budget={"steps": steps}, profiles=profiles, raw=raw)
