"""Suite-wide multiplicity: Benjamini–Hochberg q-values across every test of a sweep, so that the headline counts
of decided claims keep the false discovery rate at α; Holm stays within each claim (judge.verdict)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from archlab.experiments.judge.exact import bh_qvalues
from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.verdict import CONTRADICTED, INCONCLUSIVE, SUPPORTED, combine

TESTS = ("p", "p_tost", "p_ni")  # every test a comparison makes is one hypothesis of the family


def apply_fdr(results: Sequence[ExperimentResult]) -> None:
    """Set each comparison's q — the BH q-value of its deciding test among every test of every training result —
    then count the suite-wide correction: a supported or contradicted comparison whose q is not below the claim's α
    becomes 'inconclusive (q … ≥ α across the sweep)', and its claim's verdict is combined again."""
    family: list[tuple[int, int, str]] = []
    pvalues: list[float] = []
    for i, r in enumerate(results):
        for j, c in enumerate(r.comparisons):
            for k in TESTS:
                p = getattr(c.verdict, k)
                if not math.isnan(p):
                    family.append((i, j, k))
                    pvalues.append(p)
    q_of = dict(zip(family, bh_qvalues(pvalues)))
    for i, r in enumerate(results):
        for j, c in enumerate(r.comparisons):
            v = c.verdict
            c.verdict = replace(v, q=q_of.get((i, j, v.deciding_test), math.nan))
    for r in results:
        demoted = _demote_above_fdr(r)
        if demoted:
            r.verdict = combine([c.verdict.verdict for c in r.comparisons])


def _demote_above_fdr(result: ExperimentResult) -> int:
    """Turn the result's decided comparisons with q ≥ α into inconclusive ones; how many it turned."""
    a, n = result.spec.rule.alpha, 0
    for c in result.comparisons:
        v = c.verdict
        if v.verdict in (SUPPORTED, CONTRADICTED) and not v.q < a:
            c.verdict = replace(v, verdict=INCONCLUSIVE,
                                label=f"inconclusive (q {v.q:.3g} ≥ {a:g} across the sweep: {v.label})")
            n += 1
    return n


def survives_fdr(result: ExperimentResult, alpha: float | None = None) -> bool:
    """Whether every decided comparison of a result has q < α (a claim with none decided survives trivially)."""
    a = result.spec.rule.alpha if alpha is None else alpha
    return all(c.verdict.q < a for c in result.comparisons if c.verdict.verdict in (SUPPORTED, CONTRADICTED))


def counted_verdict(result: ExperimentResult, alpha: float | None = None) -> str:
    """The claim's verdict as the headline counts it: comparisons whose q ≥ α count as inconclusive."""
    if result.spec.kind == "cost":
        return result.verdict
    a = result.spec.rule.alpha if alpha is None else alpha
    return combine([c.verdict.verdict if c.verdict.verdict not in (SUPPORTED, CONTRADICTED) or c.verdict.q < a
                    else INCONCLUSIVE for c in result.comparisons])
