"""Options shared by `archlab claims` and `archlab experiment`: where the runs of a sweep execute."""
from __future__ import annotations


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


def executor_from_args(args):
    """The executor the options ask for (a context manager: closing it stops a Ray instance it started)."""
    from archlab.experiments.executors import make_executor

    return make_executor(args.executor, jobs=args.jobs, ray_address=args.ray_address,
                         cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
