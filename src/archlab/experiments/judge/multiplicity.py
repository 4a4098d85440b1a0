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
        if _demote_above_fdr(r):
            r.verdict = combine([c.verdict.verdict for c in r.comparisons])


def _demote_above_fdr(result: ExperimentResult) -> bool:
    """Turn the result's decided comparisons with q ≥ α into inconclusive ones; whether it turned any."""
    a, turned = result.spec.rule.alpha, False
    for c in result.comparisons:
        v = c.verdict
        if v.verdict in (SUPPORTED, CONTRADICTED) and not v.q < a:
            c.verdict = replace(v, verdict=INCONCLUSIVE,
                                label=f"inconclusive (q {v.q:.3g} ≥ {a:g} across the sweep: {v.label})")
            turned = True
    return turned

