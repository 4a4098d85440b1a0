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
    role: str = "test"  # test: a seed the verdict rests on; select: a seed that only picks the lr


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
            variants: list[str] | None = None, best_lr: Mapping[str, float | None] | None = None,
            lrs: list[float] | None = None) -> list[RunPlan]:
    """Every run of the spec for a profile, with budget and parameter matching applied.

    A two-phase lr sweep: with `lr_select_seeds` in the profile, those seeds run every lr (phase 1, role
    'select'); with `best_lr` (variant -> lr picked on phase 1) the test seeds are added at that lr only (phase 2).
    The older `lr_sweep_seeds: k` picks the lr on the first k test seeds instead. `lrs` replaces the profile's lr
    grid (the grid grown past an edge, judge.analysis.with_phase_2)."""
    budget = spec.budget_for(profile)
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
    return _plans(spec, profile, configs, n_params, budget, best_lr, lrs)


def _plans(spec: ExperimentSpec, profile: str, configs: Mapping[str, dict[str, Any]],
           n_params: Mapping[str, int | None], budget: dict[str, Any], best_lr: Mapping[str, float | None] | None,
           lrs: list[float] | None) -> list[RunPlan]:
    """One plan per variant × lr × seed of the phase the sweep is in (see resolve)."""
    plans = []
    code = code_hash()
    seeds, select = spec.seeds_for(profile), spec.lr_select_seeds_for(profile)
    k = spec.lr_sweep_seeds_for(profile)
    grid = (lrs if lrs is not None else spec.lrs_for(profile)) or [None]
    for v, base_cfg in configs.items():
        for lr in grid:
            cfg = base_cfg
            if lr is not None:
                cfg = copy.deepcopy(cfg)
                set_dotted(cfg, "train.lr", lr)
            at_best = best_lr is not None and v in best_lr and best_lr[v] == lr
            if select:
                runs = [(s, "select") for s in select] + ([(s, "test") for s in seeds] if at_best else [])
            else:
                runs = [(s, "test") for s in (seeds if k is None or at_best else seeds[:k])]
            for s, role in runs:
                plans.append(RunPlan(spec.name, v, s, cfg, budget, spec.runner,
                                     run_key(cfg, s, budget, spec.runner, code), n_params[v], spec.spec_hash, lr,
                                     code, role))
    return plans
