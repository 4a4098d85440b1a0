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
    """Set each comparison's q: the BH q-value of its deciding test among every test of every training result."""
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
