"""The paired, gated verdict rule on synthetic metrics: ceilings, floors, noise, clear effects, equivalence."""
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
    v = one(seeds([1.0, 0.999, 1.0, 0.998]), seeds([0.999, 1.0, 0.999, 1.0]), goal="max", min_effect=0.02, gate=ACC)
    assert v.verdict == "no verdict" and "ceiling" in v.label
    exact = one(seeds([1.0, 1.0, 1.0]), seeds([1.0, 1.0, 1.0]), goal="max", min_effect=0.02, gate=ACC)
    assert exact.verdict == "no verdict" and "zero variance" in exact.label


def test_baseline_at_chance_gives_no_verdict():
    # the variant is 'worse' than a baseline that never learned: nothing can be concluded
    v = one(seeds([0.10, 0.11, 0.09, 0.10]), seeds([0.30, 0.32, 0.29, 0.31]), goal="max", min_effect=0.02, gate=ACC)
    assert v.verdict == "no verdict" and "baseline did not learn" in v.label
    # a baseline stuck on the plateau (0.5 here) has not learned either, though far above chance
    v = one(seeds([0.40, 0.41, 0.39]), seeds([0.50, 0.51, 0.52]), goal="max", min_effect=0.02, gate=ACC)
    assert v.verdict == "no verdict"


def test_paired_noise_is_inconclusive():
    rng = random.Random(0)
    base = {s: 1.0 + rng.gauss(0, 0.3) for s in range(5)}
    var = {s: base[s] + rng.gauss(0, 0.2) for s in range(5)}
    v = one(var, base, goal="min", min_effect=0.05)
    assert v.verdict == "inconclusive" and v.ci_lo < 0 < v.ci_hi
    assert v.underpowered and "underpowered" in v.label  # MDE with this noise is far above m


def test_clear_paired_effect_is_supported_although_seeds_vary_a_lot():
    # seeds differ by ±0.5 but each variant is 0.1 worse than its own baseline: paired, this is decisive
    base = seeds([1.0, 1.5, 0.6, 1.2, 0.9])
    var = {s: x + 0.1 + 0.002 * s for s, x in base.items()}
    v = one(var, base, goal="min", expect="worse", min_effect=0.05)
    assert v.verdict == "supported" and v.d == pytest.approx(0.104)
    unpaired = sps.ttest_ind(list(var.values()), list(base.values()), equal_var=False).pvalue
    assert unpaired > 0.5 and v.p < 1e-5  # an unpaired test would have seen nothing


def test_effect_inside_equivalence_bounds_is_contradicted_no_effect():
    base = seeds([0.80, 0.82, 0.78, 0.81, 0.79])
    var = {s: x + [0.001, -0.002, 0.0015, -0.001, 0.0005][s] for s, x in base.items()}
    v = one(var, base, goal="max", expect="worse", min_effect=0.02, gate=ACC)
    assert v.verdict == "contradicted" and v.label == "contradicted: no effect" and v.p_tost < 0.05


def test_opposite_effect_is_contradicted_and_needs_the_winner_to_have_learned():
    base = seeds([0.70, 0.72, 0.69])
    var = {s: x + 0.1 + 0.01 * s for s, x in base.items()}  # claimed worse, is clearly better
    v = one(var, base, goal="max", expect="worse", min_effect=0.02, gate=ACC)
    assert v.label == "contradicted: opposite effect"


def test_deltas_are_paired_by_seed_not_by_position():
    assert paired({2: 1.0, 0: 3.0, 1: math.nan}, {0: 1.0, 2: 2.0, 1: 5.0}) == ([0, 2], [3.0, 1.0], [1.0, 2.0])
    assert one({0: 1.0}, {0: 2.0}).verdict == "no verdict"  # one seed is no comparison


def test_holm_matches_hand_computation():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.02, math.nan]) == pytest.approx([0.02, math.nan], nan_ok=True)


def test_holm_turns_a_borderline_comparison_inconclusive():
    base = seeds([1.0, 1.1, 0.9, 1.05])
    var = {s: x + [0.05, 0.11, 0.02, 0.09][s] for s, x in base.items()}  # p ≈ 0.03 alone
    alone = one(var, base, goal="min", min_effect=0.01)
    assert alone.verdict == "supported" and 0.01 < alone.p < 0.05
    strong = {s: x + 0.5 + 0.01 * s for s, x in base.items()}
    both = decide_claim([dict(variant=var, baseline=base, goal="min", min_effect=0.01)] * 2
                        + [dict(variant=strong, baseline=base, goal="min", min_effect=0.01)])
    assert both[0].p_adj > 0.05 and both[0].verdict == "inconclusive" and both[2].verdict == "supported"


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


def test_combine():
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["contradicted", "inconclusive"]) == "contradicted"
    assert combine(["no verdict", "no verdict"]) == "no verdict"
    assert combine(["supported", "no verdict"]) == "inconclusive"
    assert combine(["supported", "contradicted"]) == "mixed"
    assert combine(["supported", "contradicted", "inconclusive"]) == "mixed"
