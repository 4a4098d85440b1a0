"""Experiment specs: a base config, named variants as dotted-key diffs, seeds, an equal budget, the verdict rule.

A spec is YAML (see docs/claims.md). Resolving a spec for a profile (`quick` or `full`) gives one
`RunPlan` per variant × seed: the full nested config that run will train, with the budget and any
parameter-count matching already applied, and a `run_key` — the hash of everything that determines
the result — so identical runs are never trained twice (across experiments too).
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlab.config import ConfigError, flatten, read_mapping

SPECS_DIR = Path(__file__).with_name("specs")
GOALS = ("min", "max")
EXPECTS = ("better", "worse")
KINDS = ("train", "cost")
PROFILES = ("quick", "full")


@dataclass(frozen=True)
class Quote:
    """One seed sentence an experiment tests."""

    seed: str
    text: str


@dataclass(frozen=True)
class Comparison:
    """`variant` is claimed to be `expect` (better|worse) than `baseline` on `metric`."""

    variant: str
    baseline: str
    expect: str
    metric: str
    goal: str
    label: str = ""


@dataclass(frozen=True)
class Rule:
    """The verdict rule: a (1-alpha) Welch CI of the difference against a minimum effect size."""

    alpha: float = 0.05
    min_effect: float = 0.0  # smallest difference that counts, in metric units (or relative, see below)
    relative: bool = False  # min_effect is a fraction of |baseline mean|
    # the baseline must have learned the task, or no comparison is decided: {metric: NAME, at_least: X}
    # (or at_most); "both at chance" is not evidence that a component does not matter
    learned: dict | None = None


@dataclass
class ExperimentSpec:
    """One controlled experiment, as parsed from YAML."""

    name: str
    title: str
    quotes: list[Quote]
    kind: str = "train"
    runner: str = "trainer"
    base: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    match_params: dict[str, Any] | None = None
    metric: str = "val_loss"
    goal: str = "min"
    metrics: list[str] = field(default_factory=list)
    compare: list[Comparison] = field(default_factory=list)
    rule: Rule = field(default_factory=Rule)
    checks: list[dict[str, Any]] = field(default_factory=list)
    family: str = ""
    notes: str = ""
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def spec_hash(self) -> str:
        """Hash of the spec's content (not its file path)."""
        return _hash({k: v for k, v in self.raw.items() if k != "path"})[:16]

    def profile(self, name: str) -> dict[str, Any]:
        """Profile section (overrides, seeds, budget) or an empty one."""
        if name not in PROFILES:
            raise ConfigError(f"profile={name!r} is not allowed; expected one of {list(PROFILES)}")
        return self.profiles.get(name, {})

    def seeds_for(self, profile: str) -> list[int]:
        """The seeds a profile runs."""
        return [int(s) for s in self.profile(profile).get("seeds", self.seeds)]

    def budget_for(self, profile: str) -> dict[str, Any]:
        """The (equal for every variant) budget a profile runs."""
        return {**self.budget, **self.profile(profile).get("budget", {})}


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


# ---------------------------------------------------------------- dotted keys on plain dicts


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data['a']['b'] = value for key 'a.b', creating intermediate mappings."""
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """data['a']['b'] for key 'a.b', or default."""
    node: Any = data
    for p in key.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return default
        node = node[p]
    return node


def apply_diff(base: Mapping[str, Any], diff: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of base with dotted-key diff applied (a nested mapping value is merged key by key)."""
    out = copy.deepcopy(dict(base))
    for key, value in diff.items():
        if isinstance(value, Mapping) and isinstance(get_dotted(out, key), Mapping):
            for k2, v2 in flatten(value, keep_empty=True).items():
                set_dotted(out, f"{key}.{k2}", v2)
        else:
            set_dotted(out, key, value)
    return out


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def run_key(config: Mapping[str, Any], seed: int, budget: Mapping[str, Any], runner: str) -> str:
    """The identity of a run: same key ⇒ same result (deterministic training), so it is reused."""
    return _hash({"config": config, "seed": seed, "budget": budget, "runner": runner})[:24]


# ---------------------------------------------------------------- parsing


def _req(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return data[key]


def spec_from_dict(data: Mapping[str, Any], path: str = "") -> ExperimentSpec:
    """Validate and build an ExperimentSpec; every error names the file and the field."""
    where = path or "experiment spec"
    known = {"name", "title", "seed", "quote", "quotes", "kind", "runner", "base", "variants", "seeds", "budget",
             "profiles", "match_params", "metric", "goal", "metrics", "compare", "rule", "checks", "family", "notes"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    name = str(_req(data, "name", where))
    quotes: list[Quote] = []
    if "quote" in data:
        quotes.append(Quote(str(data.get("seed", "")), str(data["quote"]).strip()))
    for i, q in enumerate(data.get("quotes", []) or []):
        if not isinstance(q, Mapping) or "text" not in q:
            raise ConfigError(f"{where}: quotes[{i}] must be a mapping with 'seed' and 'text'")
        quotes.append(Quote(str(q.get("seed", "")), str(q["text"]).strip()))
    if not quotes:
        raise ConfigError(f"{where}: an experiment must quote the seed sentence it tests ('quote' + 'seed')")
    kind = data.get("kind", "train")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind={kind!r} is not allowed; expected one of {list(KINDS)}")
    goal = data.get("goal", "min")
    if goal not in GOALS:
        raise ConfigError(f"{where}: goal={goal!r} is not allowed; expected one of {list(GOALS)}")
    metric = str(data.get("metric", "val_loss"))
    variants = {str(k): dict(v or {}) for k, v in (data.get("variants") or {}).items()}
    base_variant = next(iter(variants), None)
    compare: list[Comparison] = []
    for i, c in enumerate(data.get("compare", []) or []):
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where}: compare[{i}] must be a mapping")
        v = str(_req(c, "variant", f"{where}: compare[{i}]"))
        b = str(c.get("baseline", base_variant))
        for role, vname in (("variant", v), ("baseline", b)):
            if vname not in variants:
                raise ConfigError(f"{where}: compare[{i}].{role}={vname!r} is not a variant; "
                                  f"variants: {sorted(variants)}")
        expect = c.get("expect", "worse")
        if expect not in EXPECTS:
            raise ConfigError(f"{where}: compare[{i}].expect={expect!r} is not allowed; "
                              f"expected one of {list(EXPECTS)}")
        cgoal = c.get("goal", goal if "metric" not in c else c.get("goal", goal))
        if cgoal not in GOALS:
            raise ConfigError(f"{where}: compare[{i}].goal={cgoal!r} is not allowed; expected one of {list(GOALS)}")
        compare.append(Comparison(v, b, expect, str(c.get("metric", metric)), cgoal, str(c.get("label", ""))))
    if kind == "train":
        if not variants:
            raise ConfigError(f"{where}: a training experiment needs at least one variant")
        if not compare:
            raise ConfigError(f"{where}: a training experiment needs a 'compare' list (what the claim predicts)")
    rule_d = dict(data.get("rule") or {})
    bad = sorted(set(rule_d) - {"alpha", "min_effect", "relative", "learned"})
    if bad:
        raise ConfigError(f"{where}: rule has unknown key(s) {bad}; allowed: alpha, min_effect, relative, learned")
    learned = rule_d.get("learned")
    if learned is not None and (not isinstance(learned, dict) or "metric" not in learned
                                or len(set(learned) & {"at_least", "at_most"}) != 1):
        raise ConfigError(f"{where}: rule.learned={learned!r} must be {{metric: NAME, at_least: X}} or "
                          "{metric: NAME, at_most: X}")
    rule = Rule(float(rule_d.get("alpha", 0.05)), float(rule_d.get("min_effect", 0.0)),
                bool(rule_d.get("relative", False)), dict(learned) if learned else None)
    if not 0 < rule.alpha < 1:
        raise ConfigError(f"{where}: rule.alpha={rule.alpha} must be in (0, 1)")
    seeds = [int(s) for s in data.get("seeds", [0, 1, 2])]
    profiles = {str(k): dict(v or {}) for k, v in (data.get("profiles") or {}).items()}
    for p in profiles:
        if p not in PROFILES:
            raise ConfigError(f"{where}: profiles.{p} is not allowed; expected one of {list(PROFILES)}")
    mp = data.get("match_params")
    if mp is not None:
        if not isinstance(mp, Mapping) or "key" not in mp:
            raise ConfigError(f"{where}: match_params must be a mapping with 'key' (the dotted field to adjust)")
        for v in mp.get("variants", []):
            if v not in variants:
                raise ConfigError(f"{where}: match_params.variants names {v!r}, not a variant")
    checks = list(data.get("checks") or [])
    if kind == "cost" and not checks:
        raise ConfigError(f"{where}: a cost experiment needs a 'checks' list")
    return ExperimentSpec(
        name=name, title=str(data.get("title", name)), quotes=quotes, kind=kind, runner=str(data.get("runner",
        "cost" if kind == "cost" else "trainer")), base=dict(data.get("base") or {}), variants=variants,
        seeds=seeds, budget=dict(data.get("budget") or {}), profiles=profiles, match_params=dict(mp) if mp else None,
        metric=metric, goal=goal, metrics=[str(m) for m in data.get("metrics", [])], compare=compare, rule=rule,
        checks=checks, family=str(data.get("family", "")), notes=str(data.get("notes", "")).strip(), path=path,
        raw=json.loads(json.dumps(dict(data), default=str)),
    )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read one YAML/JSON experiment spec."""
    return spec_from_dict(read_mapping(path), str(path))


def builtin_specs() -> list[ExperimentSpec]:
    """Every spec shipped in archlab/experiments/specs, in file order."""
    return [load_spec(p) for p in sorted(SPECS_DIR.glob("*.yaml"))]


# ---------------------------------------------------------------- resolving a spec into runs


ParamCounter = Callable[[Mapping[str, Any]], int]


def expand(data: Any) -> Any:
    """Nested form of a config: {'model': {'attn.n_heads': 4}} -> {'model': {'attn': {'n_heads': 4}}}."""
    if not isinstance(data, Mapping):
        return copy.deepcopy(data)
    out: dict[str, Any] = {}
    for k, v in data.items():
        v = expand(v)
        if "." in str(k):
            cur = get_dotted(out, str(k))
            if isinstance(cur, dict) and isinstance(v, dict):
                v = {**cur, **v}
            set_dotted(out, str(k), v)
        elif isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def variant_config(spec: ExperimentSpec, variant: str, profile: str) -> dict[str, Any]:
    """Base config + profile overrides + variant diff (before budget and parameter matching), in nested form."""
    cfg = apply_diff(expand(spec.base), spec.profile(profile).get("overrides", {}))
    cfg = apply_diff(cfg, expand_values(spec.variants[variant]))
    return apply_diff(cfg, spec.profile(profile).get("variant_overrides", {}).get(variant, {}))


def expand_values(diff: Mapping[str, Any]) -> dict[str, Any]:
    """A variant diff whose mapping values are put in nested form too."""
    return {k: expand(v) if isinstance(v, Mapping) else v for k, v in diff.items()}


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
            variants: list[str] | None = None) -> list[RunPlan]:
    """Every run of the spec for a profile, with budget and parameter matching applied."""
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
    for v in names:
        for s in seeds:
            plans.append(RunPlan(spec.name, v, s, configs[v], budget, spec.runner,
                                 run_key(configs[v], s, budget, spec.runner), n_params[v], spec.spec_hash))
    return plans
