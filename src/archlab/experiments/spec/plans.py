"""Resolving a spec into runs: one `RunPlan` per variant × learning rate × seed, with the budget and any
parameter-count matching applied, and the run's identity (`run_key`)."""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archlab.config import ConfigError
from archlab.dotted import apply_diff, expand, expand_values, get_dotted, set_dotted
from archlab.experiments.spec.identity import code_hash, run_key
from archlab.experiments.spec.schema import ExperimentSpec


@dataclass(frozen=True)
class RunPlan:
    """One run to perform: variant × seed, with its fully resolved config."""

    experiment: str
    variant: str
    seed: int
    config: dict[str, Any]
    budget: dict[str, Any]
    runner: str
    run_key: str
    n_params: int | None = None
    spec_hash: str = ""
    lr: float | None = None  # the swept learning rate (None: no lr_sweep)
    code_hash: str = ""


ParamCounter = Callable[[Mapping[str, Any]], int]


def variant_config(spec: ExperimentSpec, variant: str, profile: str) -> dict[str, Any]:
    """Base config + profile overrides + variant diff (before budget and parameter matching), in nested form."""
    cfg = apply_diff(expand(spec.base), spec.profile(profile).get("overrides", {}))
    cfg = apply_diff(cfg, expand_values(spec.variants[variant]))
    return apply_diff(cfg, spec.profile(profile).get("variant_overrides", {}).get(variant, {}))


def match_parameters(cfg: dict[str, Any], target: int, key: str, count: ParamCounter, *,
                     multiple_of: int = 1, lo: int | None = None, hi: int | None = None) -> tuple[dict[str, Any], int]:
    """Adjust integer field `key` of cfg so its parameter count is as close to target as possible (monotone search)."""
    cur = get_dotted(cfg, key)
    if not isinstance(cur, int):
        raise ConfigError(f"match_params.key={key!r} must name an integer field set in the config (got {cur!r})")
    lo = lo if lo is not None else multiple_of
    hi = hi if hi is not None else max(cur * 16, lo + multiple_of)

    def at(v: int) -> tuple[dict[str, Any], int]:
        c = copy.deepcopy(cfg)
        set_dotted(c, key, v)
        return c, count(c)

    a, b = lo // multiple_of, hi // multiple_of
    while b - a > 1:  # largest value whose count is <= target
        mid = (a + b) // 2
        if at(mid * multiple_of)[1] <= target:
            a = mid
        else:
            b = mid
    cands = [at(max(a, 1) * multiple_of), at(b * multiple_of)]
    return min(cands, key=lambda cn: abs(cn[1] - target))


def resolve(spec: ExperimentSpec, profile: str = "quick", count_params: ParamCounter | None = None,
            variants: list[str] | None = None, best_lr: Mapping[str, float | None] | None = None) -> list[RunPlan]:
    """Every run of the spec for a profile, with budget and parameter matching applied.

    With `lr_sweep_seeds: k` in the profile the lr sweep runs in two phases: without `best_lr` only the first k
    seeds run every lr (phase 1); with `best_lr` (variant -> lr picked on phase 1) the other seeds are added at
    that lr only (phase 2)."""
    budget = spec.budget_for(profile)
    seeds = spec.seeds_for(profile)
    names = variants or list(spec.variants)
    configs = {v: variant_config(spec, v, profile) for v in names}
    for cfg in configs.values():
        if "steps" in budget:
            set_dotted(cfg, "train.steps", int(budget["steps"]))
        if "wall_time_s" in budget:
            set_dotted(cfg, "train.max_time_s", float(budget["wall_time_s"]))
    n_params: dict[str, int | None] = {v: None for v in names}
    if count_params is not None and spec.kind == "train":
        for v in names:
            n_params[v] = count_params(configs[v])
        mp = spec.match_params
        if mp:
            ref = str(mp.get("baseline", next(iter(spec.variants))))
            target = count_params(configs[ref]) if ref in configs else count_params(variant_config(spec, ref, profile))
            tol = float(mp.get("tolerance", 0.03))
            for v in mp.get("variants", [x for x in names if x != ref]):
                if v not in configs:
                    continue
                if abs(n_params[v] - target) <= tol * target:  # already equal (e.g. single vs multi-head)
                    continue
                key = str(mp.get("keys", {}).get(v, mp["key"]))
                configs[v], n_params[v] = match_parameters(
                    configs[v], target, key, count_params, multiple_of=int(mp.get("multiple_of", 1)),
                    lo=mp.get("min"), hi=mp.get("max"))
                if abs(n_params[v] - target) > tol * target:
                    raise ConfigError(f"{spec.name}: variant {v!r} cannot be matched to {target:,} parameters by "
                                      f"adjusting {key} (closest {n_params[v]:,}, tolerance {tol:.0%})")
    plans = []
    code = code_hash()
    k = spec.lr_sweep_seeds_for(profile)
    for v in names:
        for lr in spec.lrs_for(profile) or [None]:
            cfg = configs[v]
            if lr is not None:
                cfg = copy.deepcopy(cfg)
                set_dotted(cfg, "train.lr", lr)
            phase_2 = k is None or (best_lr is not None and v in best_lr and best_lr[v] == lr)
            for s in (seeds if phase_2 else seeds[:k]):
                plans.append(RunPlan(spec.name, v, s, cfg, budget, spec.runner,
                                     run_key(cfg, s, budget, spec.runner, code), n_params[v], spec.spec_hash, lr,
                                     code))
    return plans
