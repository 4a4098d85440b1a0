"""A seed plan that can decide nothing whatever its data is a design error: the exact tests' p-value floors."""
import math

import pytest
from engine_util import run_one

from archlab.experiments.judge.exact import fisher_p, sign_flip_p
from archlab.experiments.spec import builtin_specs, calibration_specs, spec_from_dict
from archlab.experiments.spec.power import p_floor, undecidable
from archlab.experiments.sweep.store import Store


@pytest.mark.parametrize("n", [1, 3, 6, 10])
def test_the_sign_flip_floor_is_what_the_test_gives_when_every_difference_agrees(n):
    assert p_floor(n) == pytest.approx(sign_flip_p([0.3 + 0.01 * i for i in range(n)])) == min(1.0, 2 / 2 ** n)


@pytest.mark.parametrize("n", [3, 6, 10])
def test_the_fisher_floor_is_all_solved_against_none(n):
    assert p_floor(n, "solved") == pytest.approx(fisher_p(n, n, 0, n)) == pytest.approx(2 / math.comb(2 * n, n))
    assert p_floor(10, "time") is None


def _spec(seeds, n_compare):
    variants = {"base": {}, **{f"v{i}": {"toy.quality": 1.5} for i in range(n_compare)}}
    return spec_from_dict({"name": "floor", "seed": "000", "quote": "q", "runner": "toy",
                           "base": {"toy": {"quality": 1.0, "noise": 0.01}}, "variants": variants,
                           "seeds": seeds, "budget": {"steps": 10},
                           "compare": [{"variant": f"v{i}", "expect": "worse"} for i in range(n_compare)]})


def test_six_seeds_and_two_comparisons_cannot_decide_ten_can():
    msg = undecidable(_spec(list(range(6)), 2), "standard")
    assert msg == ("floor: at standard, 6 paired seeds cannot decide: the exact sign-flip test's smallest p is "
                   "0.0312, above the 0.05/2 = 0.025 that Holm asks of the first of 2 comparison(s)")
    assert undecidable(_spec(list(range(6)), 1), "standard") == ""
    assert undecidable(_spec(list(range(10)), 4), "standard") == ""


def test_the_sweep_warns_before_running_an_undecidable_plan(tmp_path):
    lines = []
    with Store(tmp_path / "r.sqlite") as st:
        res = run_one(_spec(list(range(6)), 2), st, out_dir=tmp_path, profile="standard", log=lines.append)
    assert any(x.startswith("warning: floor: at standard, 6 paired seeds cannot decide") for x in lines)
    assert res.verdict == "inconclusive"  # every seed agrees, and still nothing can be decided


@pytest.mark.parametrize("profile", ["standard", "full"])
def test_every_builtin_plan_can_decide(profile):
    stuck = [m for s in builtin_specs() + calibration_specs() if (m := undecidable(s, profile))]
    assert not stuck, "\n".join(stuck)
