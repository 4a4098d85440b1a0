"""A spec's verdict rule: the `rule` section (alpha, min_effect, relative, reason, gate or the older `learned`)
parsed into a `Rule` that archlab.experiments.judge.verdict applies. Re-exported by archlab.experiments.spec."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archlab.config import ConfigError
from archlab.dotted import suggest

GOALS = ("min", "max")
RULE_KEYS = ("alpha", "min_effect", "relative", "reason", "gate", "learned", "outcome", "solved_at", "censored_at")
# what a run's metric is, and so which test judges it (archlab.experiments.judge.verdict):
# continuous — a paired exact sign-flip test on the per-seed differences (TOST at ±m for "no effect");
# solved — each run solved the task or not (metric past `solved_at`): Fisher's exact test on the solved rates;
# time — steps to reach a level, a run that never reached it censored at `censored_at`: the log-rank test.
OUTCOMES = ("continuous", "solved", "time")
PROCEDURE_VERSION = "2"  # the decision procedure (judge.verdict); part of every registration
MIN_SEEDS = 6  # no training verdict rests on fewer paired (test) seeds
GATE_KEYS = ("chance", "plateau", "ceiling", "margin", "metric", "goal")


@dataclass(frozen=True)
class Gate:
    """A task's reference levels for one metric: what chance, the plateau and the ceiling are, and how far past
    them an arm must be to count as having learned. `goal` says which way is better ('max' or 'min')."""

    goal: str = "max"
    chance: float | None = None
    plateau: float | None = None
    ceiling: float | None = None
    margin: float = 0.0  # an arm learned when it is past max(chance, plateau) by at least this much

    def __post_init__(self):
        if self.goal not in ("min", "max"):
            raise ValueError(f"gate goal={self.goal!r} must be 'min' or 'max'")

    @property
    def learned_level(self) -> float | None:
        levels = [v for v in (self.chance, self.plateau) if v is not None]
        if not levels:
            return None
        worst = max(levels) if self.goal == "max" else min(levels)
        return worst + self.margin if self.goal == "max" else worst - self.margin

    def learned(self, value: float) -> bool:
        level = self.learned_level
        if level is None:
            return True
        return value >= level if self.goal == "max" else value <= level

    def at_ceiling(self, value: float) -> bool:
        if self.ceiling is None:
            return False
        return value >= self.ceiling if self.goal == "max" else value <= self.ceiling


@dataclass(frozen=True)
class Rule:
    """The pre-registered verdict rule (archlab.experiments.judge.verdict): paired test, TOST at ±min_effect, gates."""

    alpha: float = 0.05
    min_effect: float = 0.0  # smallest difference that counts, in metric units (or relative, see below)
    relative: bool = False  # min_effect is a fraction of |baseline mean|
    reason: str = ""  # one line: why this minimum effect (fixed before the results are seen)
    # the task's levels of `gate_metric`: an arm learned when past chance and plateau by the margin (per seed);
    # the old `learned: {metric, at_least|at_most}` form maps to a gate with chance = that level
    gate: Gate | None = None
    gate_metric: str = ""
    learned: dict | None = None
    outcome: str = "continuous"  # OUTCOMES: which test the metric calls for
    solved_at: float | None = None  # outcome 'solved': a run solved the task when its metric is past this level
    # outcome 'time': a value >= this is a run that never got there (censored); 'budget': a value past the profile's
    # step budget (a run function reports steps + its evaluation interval when the level was never reached)
    censored_at: float | str | None = None


def _check_keys(where: str, section: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """ConfigError naming the unknown keys of a spec section, the allowed ones and the closest match."""
    bad = sorted(str(k) for k in set(data) - set(allowed))
    if bad:
        what = f"{section} has unknown key(s)" if section else "unknown key(s)"
        hint = suggest(bad[0], allowed)
        hint = hint if "did you mean" in hint else ""
        raise ConfigError(f"{where}: {what} {bad}; allowed: {', '.join(allowed)}{hint}")


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ConfigError(f"{where}={x!r} must be a number")
    return float(x)


def parse_rule(rule: Any, where: str, metric: str, goal: str) -> Rule:
    """The `rule` section: alpha, min_effect, relative, reason, gate (or the old `learned` form)."""
    if rule is None:
        rule = {}
    if not isinstance(rule, Mapping):
        raise ConfigError(f"{where}: rule must be a mapping with keys {list(RULE_KEYS)}")
    _check_keys(where, "rule", rule, RULE_KEYS)
    alpha = _number(rule.get("alpha", 0.05), f"{where}: rule.alpha")
    if not 0 < alpha < 1:
        raise ConfigError(f"{where}: rule.alpha={alpha} must be in (0, 1)")
    min_effect = _number(rule.get("min_effect", 0.0), f"{where}: rule.min_effect")
    learned, gate_d = rule.get("learned"), rule.get("gate")
    if learned is not None and gate_d is not None:
        raise ConfigError(f"{where}: rule has both 'gate' and the older 'learned'; keep only 'gate'")
    gate, gate_metric = None, ""
    if learned is not None:
        ok_keys = {"metric", "at_least", "at_most"}
        if (not isinstance(learned, Mapping) or "metric" not in learned or set(learned) - ok_keys
                or len(set(learned) & {"at_least", "at_most"}) != 1):
            raise ConfigError(f"{where}: rule.learned={learned!r} must be {{metric: NAME, at_least: X}} or "
                              "{metric: NAME, at_most: X}")
        lgoal = "max" if "at_least" in learned else "min"
        level = _number(learned.get("at_least", learned.get("at_most")), f"{where}: rule.learned")
        gate, gate_metric = Gate(goal=lgoal, chance=level), str(learned["metric"])
    elif gate_d is not None:
        if not isinstance(gate_d, Mapping):
            raise ConfigError(f"{where}: rule.gate must be a mapping {{chance, plateau, ceiling, margin}}")
        _check_keys(where, "rule.gate", gate_d, GATE_KEYS)
        levels = {k: (None if gate_d.get(k) is None else _number(gate_d[k], f"{where}: rule.gate.{k}"))
                  for k in ("chance", "plateau", "ceiling")}
        ggoal = str(gate_d.get("goal", goal))
        if ggoal not in GOALS:
            raise ConfigError(f"{where}: rule.gate.goal={ggoal!r} is not allowed; expected one of {list(GOALS)}")
        margin = _number(gate_d.get("margin", 0.0) or 0.0, f"{where}: rule.gate.margin")
        if margin < 0:
            raise ConfigError(f"{where}: rule.gate.margin={margin} must be >= 0")
        gate, gate_metric = Gate(goal=ggoal, margin=margin, **levels), str(gate_d.get("metric", metric))
    outcome, solved_at, censored_at = _outcome(rule, where, goal)
    return Rule(alpha, min_effect, bool(rule.get("relative", False)), " ".join(str(rule.get("reason", "")).split()),
                gate, gate_metric, dict(learned) if learned else None, outcome, solved_at, censored_at)


def _outcome(rule: Mapping[str, Any], where: str, goal: str) -> tuple[str, float | None, float | str | None]:
    """rule.outcome with the level it needs: solved_at for 'solved', censored_at (goal min) for 'time'."""
    outcome = str(rule.get("outcome", "continuous"))
    if outcome not in OUTCOMES:
        raise ConfigError(f"{where}: rule.outcome={outcome!r} is not allowed; expected one of {list(OUTCOMES)}")
    solved_at = None if rule.get("solved_at") is None else _number(rule["solved_at"], f"{where}: rule.solved_at")
    censored_at = rule.get("censored_at")
    if censored_at is not None and censored_at != "budget":
        censored_at = _number(censored_at, f"{where}: rule.censored_at")
    if outcome == "solved" and solved_at is None:
        raise ConfigError(f"{where}: rule.outcome=solved needs rule.solved_at (the level past which a run solved "
                          "the task)")
    if outcome == "time" and (censored_at is None or goal != "min"):
        raise ConfigError(f"{where}: rule.outcome=time needs rule.censored_at (a number: a run at or past it never "
                          "reached the level; or 'budget': past the profile's step budget) and goal: min (fewer "
                          f"steps is better), got goal={goal!r}")
    if outcome != "solved" and solved_at is not None or outcome != "time" and censored_at is not None:
        raise ConfigError(f"{where}: rule.solved_at belongs to outcome 'solved' and rule.censored_at to 'time' "
                          f"(outcome is {outcome!r})")
    return outcome, solved_at, censored_at
