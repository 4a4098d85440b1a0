"""Test shorthands for the one engine: `run_one(spec, store, ...)` / `run_all(specs, store, ...)` build the
options and the executor (this process unless `jobs` > 0) and call archlab.experiments.engine.run_specs;
`plans_run(plans, store, ...)` calls the sweep driver the same way."""
from __future__ import annotations

from archlab.experiments.engine import RunOptions, run_specs
from archlab.experiments.sweep.driver import run_plans
from archlab.experiments.sweep.executors import make_executor


def _options(kw: dict) -> RunOptions:
    kw.pop("inline", None)
    return RunOptions(**kw)


def run_all(specs, store, *, jobs: int = 0, executor=None, **kw):
    """Every spec through run_specs (kw: RunOptions fields; `inline` is accepted and means jobs=0)."""
    if executor is not None:
        return run_specs(specs, store, executor, _options(kw))
    with make_executor("local", jobs=jobs) as ex:
        return run_specs(specs, store, ex, _options(kw))


def run_one(spec, store, **kw):
    """One spec through run_specs: its result."""
    return run_all([spec], store, **kw)[0]


def plans_run(plans, store, *, jobs: int = 0, executor=None, **kw):
    """The sweep driver on `plans` (kw: RunOptions fields)."""
    if executor is not None:
        return run_plans(plans, store, executor, _options(kw))
    with make_executor("local", jobs=jobs) as ex:
        return run_plans(plans, store, ex, _options(kw))
