"""`archlab claims`: run the built-in claims suite (one experiment per seed claim) and write the report."""
from __future__ import annotations

import json
from pathlib import Path

from archlab.commands._output import print_json, quiet_broken_pipe
from archlab.commands._sweep_args import Job, add_run_args, check_args
from archlab.config import ConfigError


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
    p.add_argument("--json", action="store_true", help="with --list: the claims as JSON (name, family, seed, title, "
                   "file)")
    p.add_argument("--register", action="store_true", help="record every built-in claim's and calibration's "
                   "decisive fields (task, metric, comparisons, rule, budget, seeds, runner, decision procedure) "
                   "with their hash and today's date in the registration file, and exit; a changed entry is "
                   "refused unless --amend gives the reason")
    p.add_argument("--amend", metavar="REASON", help="with --register: record the changed specs as amendments "
                   "(old and new hash, date, the fields changed, REASON); their verdicts no longer count as "
                   "pre-registered")
    p.add_argument("--registration", metavar="FILE", default=None, help="the registration file (default: the "
                   "package's experiments/registration.json)")
    p.add_argument("--recompute", metavar="RUNS.csv", help="re-derive every verdict from a sweep's raw data (the "
                   "runs.csv written beside its report) with the built-in specs, print them, and compare them with "
                   "the decisions.json beside it (exit 1 when they differ); runs nothing")
    add_run_args(p, out_default="runs/claims")
    return p


def run(args) -> int:
    from archlab.commands._sweep import run_job  # the engine: imported only when a command runs (CLI start-up)
    from archlab.experiments.spec import builtin_specs, calibration_specs
    from archlab.experiments.suite.claims import select_specs

    check_args(args)
    cal_specs = calibration_specs()
    if args.register or args.amend:
        return _register(args, cal_specs)
    if args.recompute:
        return _recompute(Path(args.recompute), builtin_specs() + cal_specs)
    specs = select_specs(args.only, cal_specs if args.calibrate else None)
    if args.list and args.json:
        with quiet_broken_pipe():
            print_json([{"name": s.name, "family": s.family, "seed": [q.seed for q in s.quotes], "title": s.title,
                         "file": Path(s.path).name} for s in specs])
        return 0
    if args.list:
        with quiet_broken_pipe():
            for s in specs:
                seeds = ",".join(q.seed for q in s.quotes)
                print(f"{s.name:<28} {s.family:<12} seed {seeds:<8} {s.title}")
        return 0
    out = Path(args.out)
    job = Job("calibrations" if args.calibrate else "claims", specs, cal_specs, out,
              args.db or str(out / "claims.sqlite"), calibrate=args.calibrate, registration=args.registration)
    return run_job(args, job)


def _recompute(path: Path, specs) -> int:
    """`--recompute RUNS.csv`: the verdicts re-derived from the raw data, checked against decisions.json."""
    from archlab.experiments.judge.raw import compare_decisions, decisions, recompute
    from archlab.experiments.suite.claims import print_verdicts

    results, notes = recompute(path, specs)
    for n in notes:
        print(f"note: {n}")
    print_verdicts(results)
    published = path.with_name("decisions.json")
    if not published.exists():
        print(f"({published} not found: nothing to compare with)")
        return 0
    try:
        diffs = compare_decisions(decisions(results), json.loads(published.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise ConfigError(f"--recompute: {published} is not a decisions file ({e})") from None
    for d in diffs:
        print(f"DIFFERS: {d}")
    print(f"{len(results)} verdict(s) recomputed: " + ("identical to " if not diffs else "DIFFERENT from ")
          + str(published))
    return 1 if diffs else 0


def _register(args, cal_specs) -> int:
    """`--register [--amend REASON]`: record the decisive fields of the built-in specs (or --only's)."""
    from archlab.experiments.spec import builtin_specs
    from archlab.experiments.spec.registration import REGISTRATION_FILE, register
    from archlab.experiments.suite.claims import select_specs

    if not args.register:
        raise ConfigError("--amend REASON goes with --register (it records why a registered spec changed)")
    if args.amend is not None and not args.amend.strip():
        raise ConfigError("--amend needs a reason (one line: why the registered protocol changed)")
    specs = select_specs(args.only, builtin_specs() + cal_specs)
    path = args.registration or REGISTRATION_FILE
    for line in register(specs, path, amend=args.amend):
        print(line)
    print(f"registration: {path} ({len(specs)} spec(s))")
    return 0
