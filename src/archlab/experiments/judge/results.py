"""What the analysis of an experiment gives: a ComparisonResult per comparison, an ExperimentResult per spec."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archlab.experiments.judge.stats import Summary, summarize
from archlab.experiments.judge.verdict import PairedVerdict
from archlab.experiments.spec import Comparison, ExperimentSpec, RunPlan
from archlab.experiments.sweep.driver import Sweep


@dataclass
class ComparisonResult:
    """One comparison of a claim, its per-seed values (each arm at its own best lr) and its verdict."""

    comparison: Comparison
    verdict: PairedVerdict
    variant_values: dict[int, float] = field(default_factory=dict)
    baseline_values: dict[int, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        c = self.comparison
        return c.label or f"{c.variant} {c.expect} than {c.baseline}"

    @property
    def variant(self) -> Summary:
        return summarize(list(self.variant_values.values()))

    @property
    def baseline(self) -> Summary:
        return summarize(list(self.baseline_values.values()))


@dataclass
class ExperimentResult:
    """Everything a report needs about one experiment."""

    spec: ExperimentSpec
    profile: str
    plans: list[RunPlan]
    runs: dict[str, list[dict[str, Any]]]  # variant -> [{seed, final, curve, n_params, wall_time_s, lr, code_hash}]
    comparisons: list[ComparisonResult]
    verdict: str
    checks: list[dict[str, Any]] = field(default_factory=list)  # cost experiments
    sweep: Sweep | None = None
    best_lr: dict[str, float | None] = field(default_factory=dict)  # the lr each variant is judged at
    lr_table: dict[str, dict[float, tuple[float, int]]] = field(default_factory=dict)  # variant -> lr -> (mean, n)
    calibration: str = ""  # why the verdict is shown as uncalibrated ('' when it is not)
    calibrated_by: list[str] = field(default_factory=list)  # the reproduced calibrations its family rests on
    n_done: int = 0  # finished runs among `plans` (every lr of a sweep)

    def values(self, variant: str, metric: str) -> list[float]:
        return [r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]]

    def by_seed(self, variant: str, metric: str) -> dict[int, float]:
        return {r["seed"]: r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]}

    @property
    def code_hashes(self) -> list[str]:
        return sorted({r.get("code_hash") or "?" for runs in self.runs.values() for r in runs})

    @property
    def shown_verdict(self) -> str:
        """The verdict as a report prints it: 'uncalibrated (supported)' when the family's calibration failed."""
        return f"uncalibrated ({self.verdict})" if self.calibration else self.verdict
