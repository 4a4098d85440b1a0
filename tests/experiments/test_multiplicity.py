"""Suite-wide multiplicity: every test of a sweep gets its Benjamini–Hochberg q-value, and a decided comparison whose
q is not below α is counted as inconclusive — in its label, its claim's verdict and so in the headline counts."""
import math
from types import SimpleNamespace

import pytest

from archlab.experiments.judge.exact import bh_qvalues
from archlab.experiments.judge.multiplicity import apply_fdr
from archlab.experiments.judge.results import ComparisonResult, ExperimentResult
from archlab.experiments.judge.verdict import PairedVerdict


def _verdict(verdict: str, label: str, p: float, p_tost: float = math.nan) -> PairedVerdict:
    return PairedVerdict(verdict, label, 10, 0.1, 0.05, 0.05, 0.15, p, p_tost)


def _result(name: str, *verdicts: PairedVerdict) -> ExperimentResult:
    spec = SimpleNamespace(name=name, kind="train", rule=SimpleNamespace(alpha=0.05))
    comps = [ComparisonResult(SimpleNamespace(label=f"c{i}"), v) for i, v in enumerate(verdicts)]
    verdict = verdicts[0].verdict if len({v.verdict for v in verdicts}) == 1 else "mixed"
    return ExperimentResult(spec, "standard", [], {}, comps, verdict)


def test_q_values_are_set_over_every_test_of_every_claim_and_weak_decisions_are_demoted():
    strong = _result("strong", _verdict("supported", "supported", 0.001))
    weak = _result("weak", _verdict("supported", "supported", 0.04))
    nulls = [_result(f"null{i}", _verdict("inconclusive", "inconclusive (underpowered)", 0.5 + i / 100))
             for i in range(8)]
    apply_fdr([strong, weak, *nulls])
    family = [0.001, 0.04, *(0.5 + i / 100 for i in range(8))]  # p_tost is NaN: not a test
    q = bh_qvalues(family)
    assert strong.comparisons[0].verdict.q == pytest.approx(q[0])
    assert weak.comparisons[0].verdict.q == pytest.approx(q[1]) and q[1] >= 0.05  # 0.04 · 10 / 2
    assert strong.verdict == "supported"
    assert weak.verdict == "inconclusive"
    assert weak.comparisons[0].verdict.label.startswith("inconclusive (q 0.2 ≥ 0.05 across the sweep: supported")


def test_a_no_effect_verdict_is_judged_by_its_equivalence_test_and_kept_when_it_survives():
    eq = _result("eq", _verdict("contradicted", "contradicted: no effect", 0.6, p_tost=0.002))
    other = _result("other", _verdict("supported", "supported", 0.01))
    apply_fdr([eq, other])
    v = eq.comparisons[0].verdict
    assert v.deciding_test == "p_tost" and v.q == pytest.approx(bh_qvalues([0.6, 0.002, 0.01])[1])
    assert eq.verdict == "contradicted" and other.verdict == "supported"


def test_one_of_two_decided_comparisons_demoted_makes_the_claim_combine_again():
    r = _result("two", _verdict("supported", "supported", 0.001), _verdict("supported", "supported", 0.045))
    apply_fdr([r, *(_result(f"n{i}", _verdict("inconclusive", "inconclusive", 0.9)) for i in range(5))])
    assert [c.verdict.verdict for c in r.comparisons] == ["supported", "inconclusive"]
    assert r.verdict != "supported"
