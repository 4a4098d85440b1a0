"""The options `archlab claims` and `archlab experiment` share, and the Job they describe. Light on purpose: every
command's parser is built at CLI start-up, so nothing here imports the experiments engine (commands._sweep does)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archlab.config import ConfigError


def add_run_args(p, *, out_default: str | None) -> None:
    """The options both commands take: --quick/--standard/--full, --steps, --max-minutes, --out, --db,
    --no-report and where runs execute."""
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke test — indicative only: tiny models, short "
                      "budgets (default)")
    size.add_argument("--standard", action="store_true", help="the profile whose verdicts the docs quote: models "
                      "and budgets where each claim's mechanism shows, lr sweeps (hours on 2 CPU cores; resumable)")
    size.add_argument("--full", action="store_true", help="the serious run: bigger models, longer (GPU)")
    p.add_argument("--steps", type=int, metavar="N", help="a smoke run: every training run takes N steps instead "
                   "of its budget (the verdicts then mean nothing; for checking the set-up)")
    p.add_argument("--max-minutes", type=float, metavar="N", help="start no run after N minutes; the runs in "
                   "progress finish, the rest stay pending and the same command continues with them")
    p.add_argument("--out", default=out_default, help="output directory for runs and the report"
                   + (f" (default {out_default})" if out_default else ""))
    p.add_argument("--db", default=None, help="SQLite results database (default: in OUT)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML/Markdown report")
    add_executor_args(p)


def add_executor_args(p) -> None:
    """--executor local|ray, --jobs, --ray-address, --cpus-per-run, --gpus-per-run."""
    g = p.add_argument_group("where runs execute")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: parallel processes on this machine (default); ray: one Ray task per run on a Ray "
                   "cluster (pip install 'archlab[ray]')")
    g.add_argument("--jobs", type=int, default=None,
                   help="runs at once (local default 2, 0 = in this process; ray default: as many as the "
                   "cluster's CPUs/GPUs allow)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (e.g. HEAD_IP:6379); default $RAY_ADDRESS, else a local Ray "
                   "started for the sweep")
    g.add_argument("--cpus-per-run", type=float, default=None, metavar="N",
                   help="Ray: CPUs each run asks for (default 1; also its torch threads)")
    g.add_argument("--gpus-per-run", type=float, default=None, metavar="N",
                   help="Ray: GPUs each run asks for (default: 1 for --full when the cluster has GPUs, else 0; "
                   "0.5 packs two runs per GPU)")


@dataclass(frozen=True)
class Job:
    """One invocation of either command: what runs, where its output goes, how it is labelled."""

    what: str  # 'claims', 'calibrations' or 'experiment NAME'
    specs: list
    cal_specs: list
    out: Path
    db: str
    calibrate: bool = False
    registration: str | None = None  # the registration file (None: the package's)


def profile_of(args) -> str:
    """The profile the size flags ask for (quick by default)."""
    return "full" if args.full else "standard" if args.standard else "quick"


def check_args(args) -> None:
    """Refuse a non-positive --steps or --max-minutes before any work."""
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ConfigError(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be ≥ 1, got {args.steps}")
