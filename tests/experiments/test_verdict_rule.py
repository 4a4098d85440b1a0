"""The paired, gated verdict rule (procedure v2) on synthetic metrics: ceilings, floors, noise, clear effects,
equivalence, non-inferiority, solved rates, time to a level, and the minimum number of seeds."""
import math
import random

import pytest
from scipy import stats as sps

from archlab.experiments.judge.verdict import Gate, combine, decide_claim, decide_paired, holm, mde_paired, paired

ACC = Gate(goal="max", chance=0.1, plateau=0.5, ceiling=0.99, margin=0.05)  # learned at >= 0.55


def one(variant, baseline, **kw):
    return decide_claim([dict(variant=variant, baseline=baseline, **kw)])[0]


def seeds(values):
    return dict(enumerate(values))


def test_both_arms_at_ceiling_is_never_contradicted():
    v = one(seeds([1.0, 0.999, 1.0, 0.998, 1.0, 0.999, 1.0, 0.999]),
            seeds([0.999, 1.0, 0.999, 1.0, 0.999, 1.0, 0.999, 1.0]), goal="max", min_effect=0.02, gate=ACC)
    assert v.verdict == "no verdict" and "ceiling" in v.label
    exact = one(seeds([1.0] * 6), seeds([1.0] * 6), goal="max", min_effect=0.02, gate=ACC)
    assert exact.verdict == "no verdict" and "zero variance" in exact.label


def test_a_three_seed_comparison_is_never_decided():
    """However clear the numbers, fewer than 6 paired seeds give no verdict (procedure v2)."""
    base = seeds([1.0, 1.1, 0.9])
    for n in (3, 5):
        b = seeds([1.0 + 0.1 * i for i in range(n)])
        v = one({s: x + 1.0 for s, x in b.items()}, b, goal="min", min_effect=0.05)
        assert v.verdict == "no verdict" and v.label == "no verdict: fewer than 6 paired seeds"
    assert one({s: x + 1.0 for s, x in base.items()}, base, goal="min").verdict == "no verdict"


def test_baseline_at_chance_gives_no_verdict():
    # the variant is 'worse' than a baseline that never learned: nothing can be concluded
    v = one(seeds([0.10, 0.11, 0.09, 0.10, 0.10, 0.11]), seeds([0.30, 0.32, 0.29, 0.31, 0.30, 0.33]), goal="max",
            min_effect=0.02, gate=ACC)
    assert v.verdict == "no verdict" and "baseline did not learn" in v.label


def test_paired_noise_is_inconclusive():
    rng = random.Random(0)
    base = {s: 1.0 + rng.gauss(0, 0.3) for s in range(8)}
    var = {s: base[s] + rng.gauss(0, 0.2) for s in range(8)}
    v = one(var, base, goal="min", min_effect=0.05)
    assert v.verdict == "inconclusive" and v.ci_lo < 0 < v.ci_hi
    assert v.underpowered and "underpowered" in v.label  # MDE with this noise is far above m


def test_clear_paired_effect_is_supported_although_seeds_vary_a_lot():
    # seeds differ by ±0.5 but each variant is 0.1 worse than its own baseline: paired, this is decisive
    base = seeds([1.0, 1.5, 0.6, 1.2, 0.9, 1.3, 0.7, 1.1])
    var = {s: x + 0.1 + 0.002 * s for s, x in base.items()}
    v = one(var, base, goal="min", expect="worse", min_effect=0.05)
    assert v.verdict == "supported" and v.d == pytest.approx(0.107)
    assert v.p == pytest.approx(2 / 2 ** 8)  # exact sign-flip: only the all-positive and all-negative patterns
    unpaired = sps.ttest_ind(list(var.values()), list(base.values()), equal_var=False).pvalue
    assert unpaired > 0.4  # an unpaired test would have seen nothing


def test_effect_inside_equivalence_bounds_is_contradicted_no_effect():
    base = seeds([0.80, 0.82, 0.78, 0.81, 0.79, 0.80, 0.83, 0.77])
    var = {s: x + [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0, -0.0005, 0.001][s] for s, x in base.items()}
    v = one(var, base, goal="max", expect="worse", min_effect=0.02, gate=ACC)
    assert v.verdict == "contradicted" and v.label == "contradicted: no effect" and v.p_tost < 0.05


def test_opposite_effect_is_contradicted_and_needs_the_winner_to_have_learned():
    base = seeds([0.70, 0.72, 0.69, 0.71, 0.70, 0.73])
    var = {s: x + 0.1 + 0.01 * s for s, x in base.items()}  # claimed worse, is clearly better
    v = one(var, base, goal="max", expect="worse", min_effect=0.02, gate=ACC)
    assert v.label == "contradicted: opposite effect"


def test_expect_same_decides_an_equivalence_both_ways():
    base = seeds([2.00, 2.10, 1.95, 2.05, 2.02, 1.98, 2.07, 2.01])
    close = {s: x + [0.002, -0.001, 0.001, -0.002, 0.0, 0.001, -0.001, 0.002][s] for s, x in base.items()}
    v = one(close, base, goal="min", expect="same", min_effect=0.02)
    assert v.verdict == "supported" and v.label == "supported: equivalent within ±m" and v.p_tost < 0.05
    far = {s: x + 0.1 + 0.001 * s for s, x in base.items()}
    v = one(far, base, goal="min", expect="same", min_effect=0.02)
    assert v.verdict == "contradicted" and "differ by at least m" in v.label


def test_expect_noninferior_loses_little():
    base = seeds([2.00, 2.10, 1.95, 2.05, 2.02, 1.98, 2.07, 2.01])
    slightly = {s: x + 0.005 + 0.001 * (s % 2) for s, x in base.items()}  # worse, but by less than m = 0.05
    v = one(slightly, base, goal="min", expect="noninferior", min_effect=0.05)
    assert v.verdict == "supported" and v.label == "supported: worse by less than m"
    much = {s: x + 0.2 + 0.001 * s for s, x in base.items()}
    assert one(much, base, goal="min", expect="noninferior", min_effect=0.05).verdict == "contradicted"


def test_bimodal_outcomes_are_judged_on_solved_rates():
    """Baseline solves 6 of 10 seeds, variant 10 of 10: a t-test on the raw values can call this 'opposite'; on solved
    rates (Fisher's exact test) it is not significant."""
    base = seeds([1.0, 1.0, 0.25, 1.0, 0.3, 1.0, 1.0, 0.28, 1.0, 0.27])
    var = seeds([1.0] * 10)
    v = one(var, base, goal="max", expect="worse", min_effect=0.2, outcome="solved", solved_at=0.9)
    assert v.solved == (10, 6) and v.p == pytest.approx(sps.fisher_exact([[10, 0], [6, 4]]).pvalue)
    assert v.verdict != "contradicted" and v.label.startswith("inconclusive")
    assert sps.ttest_1samp([x - y for x, y in zip(var.values(), base.values())], 0).pvalue < 0.05
    assert v.d == pytest.approx(-0.4)  # the variant solves more: against the claimed 'worse'


@pytest.mark.parametrize("goal, good, bad", [("max", 1.0, 0.2), ("min", 0.05, 2.0)])
@pytest.mark.parametrize("expect", ["worse", "better"])
def test_a_solved_rate_difference_is_signed_by_the_claim_whatever_the_goal(goal, good, bad, expect):
    """Baseline solves every seed, variant none: 'variant worse' is supported with d = +1 and 'variant better' is
    the opposite (d = −1), for a metric to maximise (accuracy) and one to minimise (a loss) alike."""
    base, var = seeds([good] * 10), seeds([bad] * 10)
    v = one(var, base, goal=goal, expect=expect, min_effect=0.3, outcome="solved", solved_at=0.9 if goal == "max"
            else 0.1)
    assert v.solved == (0, 10)
    assert v.d == pytest.approx(1.0 if expect == "worse" else -1.0)
    assert v.verdict == ("supported" if expect == "worse" else "contradicted")


def test_time_to_threshold_uses_the_logrank_test_with_censoring():
    fast = seeds([100, 120, 90, 110, 105, 95, 115, 100, 98, 102])
    slow = seeds([400, 500, 500, 450, 500, 480, 500, 430, 500, 470])  # 500 = never reached (budget)
    v = one(slow, fast, goal="min", expect="worse", min_effect=50, outcome="time", censored_at=500)
    assert v.verdict == "supported" and v.p < 0.001 and v.d > 300


def test_deltas_are_paired_by_seed_not_by_position():
    assert paired({2: 1.0, 0: 3.0, 1: math.nan}, {0: 1.0, 2: 2.0, 1: 5.0}) == ([0, 2], [3.0, 1.0], [1.0, 2.0])
    assert one({0: 1.0}, {0: 2.0}).verdict == "no verdict"  # one seed is no comparison


def test_holm_matches_hand_computation():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.02, math.nan]) == pytest.approx([0.02, math.nan], nan_ok=True)


def test_holm_turns_a_borderline_comparison_inconclusive():
    base = seeds([1.0, 1.1, 0.9, 1.05, 1.0, 0.95])
    var = {s: x + [0.05, 0.11, 0.02, 0.09, 0.04, 0.07][s] for s, x in base.items()}  # exact p = 2/64 alone
    alone = one(var, base, goal="min", min_effect=0.01)
    assert alone.verdict == "supported" and alone.p == pytest.approx(2 / 64)
    strong = {s: x + 0.5 + 0.01 * s for s, x in base.items()}
    both = decide_claim([dict(variant=var, baseline=base, goal="min", min_effect=0.01)] * 2
                        + [dict(variant=strong, baseline=base, goal="min", min_effect=0.01)])
    assert both[0].p_adj > 0.05 and both[0].verdict == "inconclusive"


def test_minimum_detectable_effect():
    expected = (sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)) / math.sqrt(3)
    assert mde_paired(1.0, 3) == pytest.approx(expected) == pytest.approx(3.097, abs=1e-3)
    assert mde_paired(1.0, 1) == math.inf


def test_gate_levels_and_errors():
    assert ACC.learned_level == pytest.approx(0.55) and ACC.learned(0.6) and not ACC.learned(0.54)
    loss = Gate(goal="min", chance=math.log(14), plateau=2.0, margin=0.1)
    assert loss.learned_level == pytest.approx(1.9) and loss.learned(1.5) and not loss.learned(2.5)
    with pytest.raises(ValueError, match="goal"):
        decide_paired({0: 1}, {0: 1}, goal="max", gate=Gate(goal="min"))
    with pytest.raises(ValueError, match="solved_at"):
        decide_paired({0: 1}, {0: 1}, outcome="solved")


def test_combine():
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["contradicted", "inconclusive"]) == "contradicted"
    assert combine(["no verdict", "no verdict"]) == "no verdict"
    assert combine(["supported", "no verdict"]) == "inconclusive"
    assert combine(["supported", "contradicted"]) == "mixed"
    assert combine(["supported", "contradicted", "inconclusive"]) == "mixed"


def test_a_solved_comparison_shows_its_rate_difference_with_the_counts_not_a_t_interval():
    from archlab.experiments.report.content import diff_text

    base = seeds([1.0, 1.0, 0.3, 1.0, 0.3, 1.0, 0.3, 0.3, 1.0, 0.3])
    v = one(seeds([1.0] * 10), base, goal="max", expect="worse", min_effect=0.3, outcome="solved", solved_at=0.9)
    assert diff_text(v) == "-0.500 (variant solved 10/10, baseline 5/10)"
    c = one(seeds([2.0 + 0.01 * s for s in range(10)]), seeds([1.0] * 10), goal="min", expect="worse")
    assert diff_text(c).startswith("1.04 [") and "solved" not in diff_text(c)


def test_censored_at_budget_follows_each_profiles_step_budget():
    """`censored_at: budget` censors a time past the profile's own step budget: a run that reached the level at the
    last evaluation (step == budget) counts as reached, one that never did (budget + interval) is censored."""
    from archlab.config import ConfigError
    from archlab.experiments.judge.analysis import censoring_point
    from archlab.experiments.spec import spec_from_dict

    def spec(censored_at):
        return spec_from_dict({
            "name": "timed", "seed": "000", "quote": "q", "runner": "toy", "base": {"toy": {"quality": 1.0}},
            "variants": {"base": {}, "slow": {"toy.quality": 2.0}}, "seeds": list(range(10)),
            "budget": {"steps": 1200}, "profiles": {"quick": {"budget": {"steps": 300}}},
            "metric": "steps_to_threshold", "goal": "min", "compare": [{"variant": "slow", "expect": "worse"}],
            "rule": {"min_effect": 100, "outcome": "time", "censored_at": censored_at}})

    s = spec("budget")
    assert censoring_point(s, "standard") == 1201 and censoring_point(s, "quick") == 301
    assert censoring_point(spec(1250), "quick") == 1250  # a number is the same at every profile
    fast = seeds([600, 650, 700, 1200, 620, 640, 660, 680, 700, 720])  # one reached at the last evaluation
    slow = seeds([1250] * 10)  # never reached: steps + eval interval
    v = one(slow, fast, goal="min", expect="worse", min_effect=100, outcome="time",
            censored_at=censoring_point(s, "standard"))
    assert v.verdict == "supported" and v.d == pytest.approx(1201 - sum(fast.values()) / 10)
    with pytest.raises(ConfigError, match="censored_at"):
        spec("soon")
