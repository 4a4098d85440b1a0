"""`archlab experiment SPEC.yaml`: run one user-written controlled experiment (variants × seeds) and report it."""
from __future__ import annotations

from pathlib import Path

from archlab.commands._sweep import add_executor_args, executor_from_args


def add_parser(sub):
    p = sub.add_parser(
        "experiment", help="run one experiment spec (YAML): variants × seeds, verdicts, report",
        description="Run a controlled experiment from a YAML spec (base config, variants as dotted-key diffs, "
        "seeds, budget, metric, the claim's expected direction). See docs/claims.md for the format. "
        "Results go to a SQLite database; an interrupted run resumes.")
    p.add_argument("spec", help="experiment spec file (YAML or JSON)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="use the spec's quick profile (default)")
    size.add_argument("--standard", action="store_true", help="use the spec's standard profile")
    size.add_argument("--full", action="store_true", help="use the spec's full profile")
    p.add_argument("--out", default=None, help="output directory (default runs/experiments/NAME)")
    p.add_argument("--db", default=None, help="SQLite results database (default OUT/results.sqlite)")
    add_executor_args(p)
    return p


def run(args) -> int:
    from archlab.experiments.analysis import run_experiment
    from archlab.experiments.claims import print_verdicts
    from archlab.experiments.report import write_report
    from archlab.experiments.spec import load_spec
    from archlab.experiments.store import Store

    spec = load_spec(args.spec)
    profile = "full" if args.full else "standard" if args.standard else "quick"
    out = Path(args.out or f"runs/experiments/{spec.name}")
    db = args.db or str(out / "results.sqlite")
    with Store(db) as store, executor_from_args(args) as executor:
        print(f"archlab experiment {spec.name} ({profile}) on {executor.describe()}")
        result = run_experiment(spec, store, profile=profile, out_dir=out, executor=executor, progress=True)
    if result.sweep is not None:
        print(result.sweep.summary())
    print_verdicts([result])
    paths = write_report([result], out, title=f"archlab experiment {spec.name} ({profile})",
                         command=f"archlab experiment {args.spec} --{profile}")
    print(f"report: {paths['html']}  (results database: {db})")
    return 0
