"""The decision procedure's error rates, by simulation: synthetic claims whose true effect is known are decided by
the whole loop (gates, the outcome's exact test, TOST at ±m, Holm within the claim) and the verdicts counted.

Each simulated claim has two comparisons (so Holm acts): the one measured, with true effect `effect` (in units of
m, in the claimed direction), and a second one with a large effect. Per seed: baseline b = level + seed effect;
variant v = b + effect·m + noise (loss-like: lower is better, the claim says the variant is worse). Noise models:

* normal — noise ~ N(0, σ);
* heavy — noise ~ σ·t₃ (heavy tails: rare seeds far off);
* bimodal — each run solves the task (level 1.0) or stalls on a plateau (0.3) with an arm's solve probability;
  the effect lowers the variant's solve probability so that the mean difference is effect·m. Judged both as a
  continuous metric (sign-flip test) and as a solved outcome (Fisher's exact test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archlab.experiments.judge.verdict import CONTRADICTED, SUPPORTED, Gate, decide_claim

MODELS = ("normal", "heavy", "bimodal", "bimodal-solved")
M = 0.05  # the minimum effect of the simulated claims
SIGMA = 0.05  # per-seed noise of the paired difference (normal, heavy): MDE at n = 10 ≈ 1.0·m
GATE_LOSS = Gate(goal="min", chance=10.0, plateau=None, ceiling=None)  # far away: every continuous run learned
GATE_ACC = Gate(goal="max", chance=0.1, plateau=0.2, ceiling=None)  # accuracy-like (bimodal): 0.3 and 1.0 learned


@dataclass(frozen=True)
class Rates:
    """Share of simulated claims whose measured comparison came out each way (with Monte-Carlo standard errors)."""

    model: str
    effect: float  # true effect in units of m
    n: int  # seeds
    sims: int
    claimed_or_opposite: float  # 'supported' or 'contradicted: opposite effect'
    no_effect: float  # 'contradicted: no effect'

    def se(self, rate: float) -> float:
        return math.sqrt(max(rate * (1 - rate), 1e-12) / self.sims)


def simulated_arms(model: str, effect: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(variant, baseline) values of one comparison on n seeds."""
    if model.startswith("bimodal"):
        p_base = 0.7  # the baseline solves 70 % of its runs; 0.7 of the (1.0 − 0.3) gap per solve
        p_var = p_base - effect * M / 0.7  # accuracy: the variant is worse by effect·m on average
        base = np.where(rng.random(n) < p_base, 1.0, 0.3) + rng.normal(0, 0.005, n)
        var = np.where(rng.random(n) < p_var, 1.0, 0.3) + rng.normal(0, 0.005, n)
        return var, base
    base = 2.0 + rng.normal(0, 0.3, n)  # a large seed effect, shared by both arms (pairing removes it)
    noise = rng.normal(0, SIGMA, n) if model == "normal" else SIGMA * rng.standard_t(3, n)
    return base + effect * M + noise, base


def _claim(model: str, effect: float, n: int, rng: np.random.Generator) -> list[dict]:
    """The keyword arguments of decide_claim for one simulated claim (measured comparison first)."""
    acc = model.startswith("bimodal")
    kw = {"goal": "max" if acc else "min", "expect": "worse", "min_effect": M,
          "gate": GATE_ACC if acc else GATE_LOSS}
    if model == "bimodal-solved":
        kw |= {"outcome": "solved", "solved_at": 0.9}
    out = []
    for eff in (effect, 6.0):
        v, b = simulated_arms(model, eff, n, rng)
        out.append({"variant": dict(enumerate(v.tolist())), "baseline": dict(enumerate(b.tolist())), **kw})
    return out


def operating_characteristics(model: str, effect: float, *, n: int = 10, sims: int = 2000, seed: int = 0,
                              alpha: float = 0.05) -> Rates:
    """Decide `sims` simulated claims with true effect `effect`·m and count the measured comparison's verdicts."""
    if model not in MODELS:
        raise ValueError(f"model={model!r}; expected one of {MODELS}")
    rng = np.random.default_rng(seed)
    claimed = no_effect = 0
    for _ in range(sims):
        v = decide_claim(_claim(model, effect, n, rng), alpha)[0]
        claimed += v.verdict == SUPPORTED or v.label == "contradicted: opposite effect"
        no_effect += v.verdict == CONTRADICTED and v.label == "contradicted: no effect"
    return Rates(model, effect, n, sims, claimed / sims, no_effect / sims)
