"""`archlab experiment SPEC.yaml`: run one user-written controlled experiment (variants × seeds) through the same
engine, options and report as `archlab claims`."""
from __future__ import annotations

from pathlib import Path

from archlab.commands._sweep_args import Job, add_run_args


def add_parser(sub):
    p = sub.add_parser(
        "experiment", help="run one experiment spec (YAML): variants × seeds, verdicts, report",
        description="Run a controlled experiment from a YAML spec (base config, variants as dotted-key diffs, "
        "seeds, budget, metric, the claim's expected direction). See docs/claims.md for the format. "
        "Results go to a SQLite database; an interrupted run resumes. Same engine, options and report as "
        "`archlab claims`.")
    p.add_argument("spec", help="experiment spec file (YAML or JSON)")
    add_run_args(p, out_default=None)
    return p


def run(args) -> int:
    from archlab.commands._sweep import run_job  # the engine: imported only when a command runs (CLI start-up)
    from archlab.experiments.spec import calibration_specs, load_spec

    spec = load_spec(args.spec)
    out = Path(args.out or f"runs/experiments/{spec.name}")
    job = Job(f"experiment {spec.name}", [spec], calibration_specs(), out, args.db or str(out / "results.sqlite"))
    return run_job(args, job)
