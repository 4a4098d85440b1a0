"""Calibrations (calibration/*.yaml, `archlab claims --calibrate`) reproduce published results whose direction is
known; a claim family whose calibration was not run or did not reproduce has its verdicts shown as
"uncalibrated (<verdict>)" (`apply_calibrations`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.engine import plans_for
from archlab.experiments.judge.analysis import analyze
from archlab.experiments.judge.stats import summarize
from archlab.experiments.spec import ExperimentSpec, builtin_specs, calibration_specs
from archlab.experiments.sweep.driver import RunOptions
from archlab.experiments.sweep.store import Store


@dataclass
class Calibration:
    """One calibration spec and whether it reproduced its published result (all comparisons supported)."""

    spec: ExperimentSpec
    result: Any = None  # ExperimentResult, None when it could not even be resolved
    status: str = "not run"  # reproduced | not reproduced | not run | incomplete | broken
    detail: str = ""

    @property
    def reproduced(self) -> bool:
        return self.status == "reproduced"

    @property
    def mark(self) -> str:
        return "✔" if self.reproduced else "✗"

    @property
    def ours(self) -> str:
        """Our figure: the spec metric per variant (mean ± sd over seeds, at its best lr)."""
        r = self.result
        if r is None:
            return self.detail
        parts = [f"{v} {summarize(r.values(v, self.spec.metric)).fmt()}" for v in self.spec.variants
                 if r.values(v, self.spec.metric)]
        return f"{self.spec.metric}: " + ", ".join(parts) if parts else "no finished runs"

    @property
    def paper(self) -> str:
        ref = self.spec.reference
        bits = [str(ref[k]) for k in ("paper", "figure", "expect") if ref.get(k)]
        return " — ".join(bits) or self.spec.notes[:200]


def calibration_status(result) -> tuple[str, str]:
    """(status, detail) of an analysed calibration: reproduced only when every comparison is supported."""
    if result.n_done == 0:
        return "not run", f"0 of {len(result.plans)} runs finished"
    labels = [c.verdict.label for c in result.comparisons]
    if all(c.verdict.verdict == "supported" for c in result.comparisons):
        return "reproduced", "; ".join(labels)
    missing = len(result.plans) - result.n_done
    if missing > 0:
        return "incomplete", f"{missing} of {len(result.plans)} run(s) not finished; " + "; ".join(labels)
    return "not reproduced", "; ".join(labels)


def calibrations(store: Store, profile: str, specs: Sequence[ExperimentSpec] | None = None,
                 results: Sequence[Any] = ()) -> list[Calibration]:
    """The state of every calibration at a profile, read from the store (nothing is run here); `results` are
    calibration results already analysed (from a `--calibrate` sweep) and used as they are."""
    have = {r.spec.name: r for r in results}
    out = []
    for spec in (calibration_specs() if specs is None else specs):
        r = have.get(spec.name)
        if r is None:
            try:
                r = analyze(spec, store, plans_for(spec, RunOptions(profile=profile), store), profile)
            except ConfigError as e:
                out.append(Calibration(spec, None, "broken", str(e)))
                continue
        status, detail = calibration_status(r)
        out.append(Calibration(spec, r, status, detail))
    return out


def apply_calibrations(results: Sequence[Any], cals: Sequence[Calibration]) -> None:
    """Mark the verdicts of every training claim whose family has no reproduced calibration as uncalibrated
    (`result.calibration` says why); cost claims are computations and need none."""
    by_family: dict[str, list[Calibration]] = {}
    for c in cals:
        for f in c.spec.families:
            by_family.setdefault(f, []).append(c)
    for r in results:
        if r.spec.kind == "cost":
            continue
        fams = r.spec.families
        mine = [c for f in fams for c in by_family.get(f, [])]
        if not mine:
            r.calibration = f"no calibration covers family {', '.join(fams) or '(none)'}"
        elif not all(c.reproduced for c in mine):
            bad = [f"{c.spec.name}: {c.status}" for c in mine if not c.reproduced]
            r.calibration = "calibration " + "; ".join(bad)
        else:
            r.calibration, r.calibrated_by = "", [c.spec.name for c in mine]


def print_calibrations(cals: Sequence[Calibration], log: Callable[[str], None] = print) -> None:
    """The calibration table for the terminal (shown before the verdicts)."""
    if not cals:
        log("calibrations: none defined")
        return
    log("calibrations (a family's verdicts count only when its calibrations reproduce):")
    width = max(len(c.spec.name) for c in cals)
    known = {f for s in builtin_specs() for f in s.families}
    for c in cals:
        log(f"  {c.mark} {c.spec.name:<{width}}  {c.status:<15} family {c.spec.family or '-'}; ours: {c.ours}")
        if not set(c.spec.families) & known:
            log(f"    (family {c.spec.family!r} names no claim family {sorted(known)}: it calibrates nothing)")
