"""The run-function registry: what one run of an experiment executes, by registered name.

A run function has the signature `run_fn(config, seed, budget, out_dir) -> {"final": {...}, "curve": [...]}`
(`curve` is a list of `{"step": s, metric: value, ...}`; an optional `"n_params"` is stored too). Built-in ones
register themselves with `@run_function(NAME)` and a spec names them `runner: NAME`; a user's own spec may also
name any `package.module:function`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from archlab.config import ConfigError

RunFn = Callable[[dict, int, dict, str], dict]
RUN_FUNCTIONS: dict[str, RunFn] = {}  # built-in name -> run function, filled by @run_function below


def run_function(name: str) -> Callable[[RunFn], RunFn]:
    """Decorator: make a run function available to specs as `runner: NAME` (next to the function itself)."""

    def deco(fn: RunFn) -> RunFn:
        if RUN_FUNCTIONS.setdefault(name, fn) is not fn:
            raise KeyError(f"run function {name!r} is registered twice")
        return fn

    return deco


def resolve_run_fn(ref: str | RunFn) -> RunFn:
    """A run function from a built-in name, a 'module:function' path, or a callable."""
    if callable(ref):
        return ref
    if ref in RUN_FUNCTIONS:
        return RUN_FUNCTIONS[ref]
    if ":" not in ref:
        raise ConfigError(f"runner={ref!r} is not a built-in run function ({sorted(RUN_FUNCTIONS)}) "
                          "nor a 'package.module:function' path")
    mod, fn = ref.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"runner={ref!r}: cannot import {ref} ({e})") from None
