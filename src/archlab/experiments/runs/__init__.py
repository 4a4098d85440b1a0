"""What one run executes: the run-function registry (registry) and the built-in run functions (builtin, claim_runs),
each registered by name. The only part of archlab.experiments whose code is part of a run's identity."""
from archlab.experiments.runs import builtin, claim_runs  # noqa: F401  (importing them registers their run functions)
from archlab.experiments.runs.builtin import param_counter_for
from archlab.experiments.runs.registry import RUN_FUNCTIONS, RunFn, resolve_run_fn, run_function

__all__ = ["RUN_FUNCTIONS", "RunFn", "param_counter_for", "resolve_run_fn", "run_function"]
