"""The built-in claims suite: choosing claims by name or family (`--only`) and the terminal verdict table. Running
them is archlab.experiments.engine.run_specs; their calibrations are archlab.experiments.suite.calibration."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.judge.results import verdict_head
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
    """A plain-text verdict table, one line per claim (verdict at its scale, registration status, comparisons),
    then the counts line."""
    width = max((len(r.spec.name) for r in results), default=10)
    vwidth = max((len(r.shown_verdict) for r in results), default=13)
    for r in results:
        detail = "; ".join(f"{c.label}: {r.comparison_label(c)}" for c in r.comparisons) or "; ".join(
            f"{c['name']}: {c['verdict']}" for c in r.checks)
        status = f"[{r.registration}] " if r.registration else ""
        log(f"{r.spec.name:<{width}}  {r.shown_verdict:<{vwidth}} {status}{detail}")
    if results:
        log(counts_text(results))


def counts_text(results: Sequence[Any]) -> str:
    """'N claims: 3 supported, 1 contradicted, …; 2 pre-registered, 1 amended, 1 not registered'."""
    heads: dict[str, int] = {}
    for r in results:
        heads[verdict_head(r.shown_verdict)] = heads.get(verdict_head(r.shown_verdict), 0) + 1
    text = f"{len(results)} claims: " + ", ".join(f"{n} {h}" for h, n in heads.items())
    if any(r.registration for r in results):
        pre = sum(bool(r.pre_registered) for r in results)
        amended = sum(str(r.registration).startswith("amended") for r in results)
        text += f"; {pre} pre-registered, {amended} amended, {len(results) - pre - amended} not registered"
    return text
