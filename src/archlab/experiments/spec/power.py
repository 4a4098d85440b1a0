"""Whether a spec's seed plan can decide at all: the smallest p-value its test can give with n paired seeds,
against the level Holm asks of a claim's first comparison (alpha / k for k comparisons).

An exact test has a floor: the two-sided sign-flip test on n paired differences cannot go below 2 / 2ⁿ (every
difference of one sign), Fisher's exact test on n vs n runs not below 2 / C(2n, n) (one arm solves every seed, the
other none). A plan whose floor is above alpha / k can never support or contradict anything — whatever the data
— so it is a design error, not an inconclusive result (e.g. 6 seeds, 2 comparisons: 1/32 > 0.025). The log-rank
test (`outcome: time`) is asymptotic and has no such floor."""
from __future__ import annotations

import math

from archlab.experiments.spec.schema import ExperimentSpec


def p_floor(n: int, outcome: str = "continuous") -> float | None:
    """The smallest two-sided p-value the outcome's exact test can give with n paired seeds (None: no floor)."""
    if n < 1:
        return 1.0
    if outcome == "solved":
        return min(1.0, 2.0 / math.comb(2 * n, n))
    if outcome == "time":
        return None
    return min(1.0, 2.0 / 2 ** n)


def undecidable(spec: ExperimentSpec, profile: str) -> str:
    """Why `spec`'s plan at `profile` can decide nothing whatever its data ('' when it can)."""
    if spec.kind != "train" or not spec.compare:
        return ""
    n, k, alpha = len(spec.seeds_for(profile)), len(spec.compare), spec.rule.alpha
    floor = p_floor(n, spec.rule.outcome)
    if floor is None or floor <= alpha / k:
        return ""
    test = "Fisher's exact test" if spec.rule.outcome == "solved" else "the exact sign-flip test"
    return (f"{spec.name}: at {profile}, {n} paired seeds cannot decide: {test}'s smallest p is {floor:.3g}, above "
            f"the {alpha:g}/{k} = {alpha / k:.3g} that Holm asks of the first of {k} comparison(s)")
