"""What the analysis of an experiment gives: a ComparisonResult per comparison, an ExperimentResult per spec."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archlab.experiments.judge.stats import Summary, summarize
from archlab.experiments.judge.verdict import PairedVerdict, combine
from archlab.experiments.spec import Comparison, ExperimentSpec, RunPlan
from archlab.experiments.spec.scope import ScopeCondition, unmet
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
    by_lr: dict[str, dict[float | None, list[dict[str, Any]]]] = field(default_factory=dict)  # every finished run
    registration: str = ""  # 'registered (DATE)', 'amended after registration (…)', 'not registered' ('' unknown)
    pre_registered: bool = False  # registered and never amended (spec.registration.Status.pre_registered)
    half_budget: str = ""  # the verdict re-decided at half the budget (judge.budget); '' when not checked
    budget_check: str = ""  # 'budget-dependent (at half budget: X)', 'same at half budget', 'half-budget check …'

    def values(self, variant: str, metric: str) -> list[float]:
        return [r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]]

    def by_seed(self, variant: str, metric: str) -> dict[int, float]:
        return {r["seed"]: r["final"][metric] for r in self.runs.get(variant, []) if metric in r["final"]}

    @property
    def code_hashes(self) -> list[str]:
        return sorted({r.get("code_hash") or "?" for runs in self.runs.values() for r in runs})

    @property
    def scale(self) -> Scale:
        """The scale the verdict was reached at (the baseline arm's parameters, steps, tokens seen)."""
        return scale_of(self)

    @property
    def unmet_scope(self) -> list[ScopeCondition]:
        """The seed's stated conditions the profile's set-up does not meet."""
        return unmet(self.spec.scope, self.profile)

    def unmet_scope_for(self, cr: ComparisonResult) -> list[ScopeCondition]:
        """The unmet conditions that concern one comparison (claim-wide ones and those naming its variant)."""
        return [c for c in self.unmet_scope if c.applies_to(cr.comparison.variant)]

    @property
    def label(self) -> str:
        """The verdict with what it means and the scale it holds at, before the calibration wrapper. When every
        contradicted comparison has an unmet condition, the comparisons within the conditions decide (the others
        are named, not counted), or, with none within them, the claim is out of scope at this scale."""
        if self.spec.kind == "cost":
            return self.verdict
        text = claim_label(self.verdict, [c.verdict for c in self.comparisons], self.spec.rule.relative)
        against = [cr for cr in self.comparisons if cr.verdict.verdict == "contradicted"]
        if against and all(self.unmet_scope_for(cr) for cr in against):
            outside = _unique(c for cr in against for c in self.unmet_scope_for(cr))
            inside = [cr for cr in self.comparisons if not self.unmet_scope_for(cr)]
            if not inside:
                return scoped(text, outside, self.scale.text())
            verdicts = [cr.verdict for cr in inside]
            text = claim_label(combine([v.verdict for v in verdicts]), verdicts, self.spec.rule.relative)
            conds = "; ".join(f"{c.condition}: {c.why}" for c in outside)
            return (f"{text} at {self.scale.text()} ({len(self.comparisons) - len(inside)} of "
                    f"{len(self.comparisons)} comparisons out of scope at this scale: {conds})")
        concerned = _unique(c for cr in self.comparisons for c in self.unmet_scope_for(cr))
        if not self.comparisons:
            concerned = [c for c in self.unmet_scope if not c.comparisons]
        return scoped(text, concerned, self.scale.text(), out_of_scope=False)

    def comparison_label(self, cr: ComparisonResult) -> str:
        """One comparison's label: 'reversed' / 'no effect ≥ m' spelt out, out of scope when a condition is unmet."""
        text = comparison_words(cr.verdict.label, cr.verdict.min_effect, self.spec.rule.relative)
        text = scoped(text, self.unmet_scope_for(cr), "")
        return f"uncalibrated ({text})" if self.calibration else text

    @property
    def shown_verdict(self) -> str:
        """The verdict as a report prints it: its label and scale, 'budget-dependent (…)' when half the budget
        decides otherwise, wrapped as 'uncalibrated (…)' when the family's calibration failed."""
        text = self.label + (f"; {self.budget_check}" if self.budget_check.startswith("budget-dependent") else "")
        return f"uncalibrated ({text})" if self.calibration else text


# ---------------------------------------------------------------- labels


HEADS = ("uncalibrated", "out of scope", "supported", "contradicted", "mixed", "inconclusive", "no verdict")


def verdict_head(shown: str) -> str:
    """The category a shown verdict counts as (one of HEADS; 'no verdict' for anything else)."""
    return next((h for h in HEADS if str(shown).startswith(h)), "no verdict")


@dataclass(frozen=True)
class Scale:
    """The size a verdict was reached at: the baseline arm's parameters, training steps, tokens seen."""

    params: int | None = None
    steps: int | None = None
    tokens: int | None = None

    def text(self) -> str:
        """'0.2M params, 0.8M tokens' (tokens when known, else steps); '' when nothing is known."""
        parts = [f"{human(self.params)} params"] if self.params else []
        if self.tokens:
            parts.append(f"{human(self.tokens)} tokens")
        elif self.steps:
            parts.append(f"{self.steps} steps")
        return ", ".join(parts)


def human(n: float) -> str:
    """A count in words a table can hold: 950, 0.2M, 12M, 1.3B."""
    if n < 10_000:
        return f"{n:g}"
    if n < 1e9:
        v = n / 1e6
        return f"{v:.0f}M" if v >= 10 else f"{v:.2g}M"
    v = n / 1e9
    return f"{v:.0f}B" if v >= 10 else f"{v:.2g}B"


def _baseline_arm(spec: ExperimentSpec) -> str | None:
    return spec.compare[0].baseline if spec.compare else next(iter(spec.variants), None)


def scale_of(r: ExperimentResult) -> Scale:
    """Parameters of the baseline arm (plans, else its runs), steps of the budget, tokens seen: the runs' final
    `tokens` when reported, else steps × batch_size × seq_len (or block_size) of its config when known."""
    base = _baseline_arm(r.spec)
    runs = r.runs.get(base, []) if base else []
    params = next((p.n_params for p in r.plans if p.variant == base and p.n_params), None) or \
        next((x.get("n_params") for x in runs if x.get("n_params")), None)
    budget = r.plans[0].budget if r.plans else r.spec.budget_for(r.profile) if r.spec.kind == "train" else {}
    steps = budget.get("steps")
    reported = [x["final"]["tokens"] for x in runs if isinstance(x.get("final", {}).get("tokens"), (int, float))]
    tokens = sum(reported) / len(reported) if reported else None
    if tokens is None and steps:
        cfg = next((p.config for p in r.plans if p.variant == base), {})
        batch = cfg.get("train", {}).get("batch_size")
        seq = cfg.get("task", {}).get("seq_len") or cfg.get("task", {}).get("block_size")
        tokens = steps * batch * seq if isinstance(batch, int) and isinstance(seq, int) else None
    return Scale(int(params) if params else None, int(steps) if steps else None, int(tokens) if tokens else None)


def _m_text(m: float, relative: bool) -> str:
    return f"{m:.0%} of the baseline" if relative else f"{m:g}"


def comparison_words(label: str, min_effect: float, relative: bool = False) -> str:
    """'contradicted: no effect' → 'contradicted: no effect ≥ m', 'contradicted: opposite effect' → '…: reversed'."""
    if label == "contradicted: no effect":
        return f"contradicted: no effect ≥ {_m_text(min_effect, relative)}"
    if label == "contradicted: opposite effect":
        return "contradicted: reversed"
    return label


def claim_label(verdict: str, comparisons: list[Any], relative: bool = False) -> str:
    """A claim's verdict in words: a contradicted claim says whether it was reversed or showed no effect ≥ m."""
    if verdict != "contradicted":
        return verdict
    against = [c for c in comparisons if getattr(c, "verdict", "") == "contradicted"]
    if any(c.label == "contradicted: opposite effect" for c in against):
        return "contradicted: reversed"
    if against and all(c.label == "contradicted: no effect" for c in against):
        return f"contradicted: no effect ≥ {_m_text(min(c.min_effect for c in against), relative)}"
    return comparison_words(against[0].label, against[0].min_effect, relative) if against else verdict


def _unique(conditions) -> list[ScopeCondition]:
    out: list[ScopeCondition] = []
    for c in conditions:
        if c not in out:
            out.append(c)
    return out


def scoped(label: str, unmet_conditions: list[ScopeCondition], scale: str, out_of_scope: bool = True) -> str:
    """The label at its scale; with an unmet condition a contradiction (or a mixed claim) is 'out of scope at this
    scale (condition: why)' (unless `out_of_scope` is false: a contradicted comparison lies within the conditions)
    and any other verdict carries 'outside the seed's stated conditions: …'."""
    conds = "; ".join(f"{c.condition}: {c.why}" for c in unmet_conditions)
    if out_of_scope and conds and (label.startswith("contradicted") or label == "mixed"):
        return f"out of scope at this scale ({conds})"
    text = f"{label} at {scale}" if scale else label
    if conds:
        text += f" (outside the seed's stated conditions: {'; '.join(c.condition for c in unmet_conditions)})"
    return text
