"""How the runs of a sweep execute and are recorded: executors (this process, local processes, a Ray cluster),
the driver that submits, retries and records them (driver.run_plans), and the SQLite results store (store)."""
from archlab.experiments.sweep.driver import Sweep, run_plans
from archlab.experiments.sweep.executors import InlineExecutor, LocalExecutor, RayExecutor, make_executor
from archlab.experiments.sweep.pool import PoolExecutor
from archlab.experiments.sweep.store import Store

__all__ = ["InlineExecutor", "LocalExecutor", "PoolExecutor", "RayExecutor", "Store", "Sweep", "make_executor",
           "run_plans"]
