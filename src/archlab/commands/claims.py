"""`archlab claims`: run the built-in claims suite (one experiment per seed claim) and write the report."""
from __future__ import annotations

from pathlib import Path

from archlab.commands._sweep import Job, add_run_args, check_args, run_job


def add_parser(sub):
    p = sub.add_parser(
        "claims", help="test every seed claim with controlled experiments and write a verdict report",
        description="Run the built-in claims suite: each claim of the seeds (CNN order, Transformer ablations, "
        "Mamba ablations, sequence-mixer expressiveness, seed 003's cost numbers) becomes a controlled experiment "
        "(variants × seeds at an equal budget), stored in SQLite and decided supported / contradicted / "
        "inconclusive by a stated rule. Interrupted sweeps resume where they stopped.")
    p.add_argument("--calibrate", action="store_true", help="run the calibrations (published results of known "
                   "direction, reproduced at small scale) instead of the claims; a claims report marks a family "
                   "whose calibration did not reproduce (or was not run at that profile) as uncalibrated")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these claims (or families: cnn, transformer, "
                   "mamba, mixers, cost)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    add_run_args(p, out_default="runs/claims")
    return p


def run(args) -> int:
    from archlab.experiments.spec import calibration_specs
    from archlab.experiments.suite.claims import select_specs

    check_args(args)
    cal_specs = calibration_specs()
    specs = select_specs(args.only, cal_specs if args.calibrate else None)
    if args.list:
        for s in specs:
            seeds = ",".join(q.seed for q in s.quotes)
            print(f"{s.name:<28} {s.family:<12} seed {seeds:<8} {s.title}")
        return 0
    out = Path(args.out)
    job = Job("calibrations" if args.calibrate else "claims", specs, cal_specs, out,
              args.db or str(out / "claims.sqlite"), calibrate=args.calibrate)
    return run_job(args, job)
