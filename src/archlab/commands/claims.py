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
    size.add_argument("--quick", action="store_true", help="tiny models, a few hundred steps, 3 seeds (default; "
                      "about 20 minutes on 2 CPU cores)")
    size.add_argument("--full", action="store_true", help="the serious run: bigger models, longer, 5 seeds (GPU)")
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
    from archlab.experiments.claims import print_verdicts, run_suite, select_specs
    from archlab.experiments.report import write_report
    from archlab.experiments.store import Store

    specs = select_specs(args.only)
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be ≥ 1, got {args.steps}")
        specs = [with_steps(s, args.steps) for s in specs]
    if args.list:
        for s in specs:
            seeds = ",".join(q.seed for q in s.quotes)
            print(f"{s.name:<28} {s.family:<12} seed {seeds:<8} {s.title}")
        return 0
    profile = "full" if args.full else "quick"
    out = Path(args.out)
    db = args.db or str(out / "claims.sqlite")
    with Store(db) as store, executor_from_args(args) as executor:
        results = run_suite(specs, store, profile=profile, out_dir=out, executor=executor, progress=True)
    print()
    print_verdicts(results)
    if not args.no_report:
        cmd = "archlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["claims"] else \
            f"archlab claims --{profile}"
        smoke = f", smoke run of {args.steps} steps: verdicts meaningless" if args.steps is not None else ""
        paths = write_report(results, out, title=f"archlab claims ({profile}{smoke})", command=cmd)
        print(f"\nreport: {paths['html']}  (markdown: {paths['md']}; results database: {db})")
    failed = sum(len(r.runs) == 0 and r.spec.kind == "train" for r in results)
    return 1 if failed else 0


def with_steps(spec, steps: int):
    """The spec with every profile's budget set to `steps` steps (its hash changes, so its runs are separate)."""
    import dataclasses

    profiles = {k: {**v, "budget": {"steps": steps}} for k, v in spec.profiles.items()}
    raw = {**spec.raw, "budget": {"steps": steps}, "profiles": profiles}
    return dataclasses.replace(spec, budget={"steps": steps}, profiles=profiles, raw=raw)
