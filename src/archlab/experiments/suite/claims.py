"""The built-in claims suite: choosing claims by name or family (`--only`) and the terminal verdict table. Running
them is archlab.experiments.engine.run_specs; their calibrations are archlab.experiments.suite.calibration."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.spec import ExperimentSpec, builtin_specs


def select_specs(only: Sequence[str] | None = None, specs: list[ExperimentSpec] | None = None) -> list[ExperimentSpec]:
    """Built-in specs, filtered by name or family (`--only`); an unknown name is a clear error."""
    specs = specs if specs is not None else builtin_specs()
    if not only:
        return specs
    families = {f for s in specs for f in s.families}
    known = {s.name for s in specs} | families
    for n in only:
        if n not in known:
            raise ConfigError(f"--only {n!r} names no claim; claims: {sorted(s.name for s in specs)}; "
                              f"families: {sorted(families)}")
    return [s for s in specs if s.name in only or set(s.families) & set(only)]


def print_verdicts(results: Sequence[Any], log: Callable[[str], None] = print) -> None:
    """A plain-text verdict table, one line per claim."""
    width = max((len(r.spec.name) for r in results), default=10)
    vwidth = max((len(r.shown_verdict) for r in results), default=13)
    for r in results:
        detail = "; ".join(f"{c.label}: {c.verdict.label}" for c in r.comparisons) or "; ".join(
            f"{c['name']}: {c['verdict']}" for c in r.checks)
        log(f"{r.spec.name:<{width}}  {r.shown_verdict:<{vwidth}} {detail}")
