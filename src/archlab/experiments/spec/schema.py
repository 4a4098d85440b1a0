"""Experiment specs: a base config, named variants as dotted-key diffs, seeds, an equal budget, the verdict rule.

A spec is YAML (see docs/claims.md). Resolving a spec for a profile (`quick`, `standard` or `full`) gives
one `RunPlan` per variant × learning rate (`lr_sweep`) × seed: the full nested config that run will train, with
the budget and any parameter-count matching already applied, and a `run_key` — the hash of everything that
determines the result, including the code that runs it (`code_hash`) — so identical runs are never trained
twice (across experiments too), and runs of other code are never reused.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlab.config import ConfigError, read_mapping
from archlab.experiments.spec.identity import content_hash
from archlab.experiments.spec.rule import (
    GOALS,
    Rule,
    _check_keys,
    _number,
    parse_rule,
)
from archlab.experiments.spec.scope import ScopeCondition, parse_scope

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "calibration"
# better / worse: the variant differs in that direction by at least m; same: equivalent within ±m;
# noninferior: the variant is worse by less than m ("loses little")
EXPECTS = ("better", "worse", "same", "noninferior")
KINDS = ("train", "cost")
PROFILES = ("quick", "standard", "full")
PROFILE_KEYS = ("overrides", "variant_overrides", "seeds", "budget", "lr_sweep", "lr_sweep_seeds", "lr_select_seeds",
                "max_seeds")


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
    min_effect: float | None = None  # overrides rule.min_effect for this comparison (another metric's units)


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
    task_reason: str = ""  # one line: why this task lets the claimed mechanism show
    lr_sweep: list[float] = field(default_factory=list)  # every variant at each lr; judged at its own best
    reference: dict[str, Any] = field(default_factory=dict)  # calibrations: {paper, figure, expect}
    scope: list[ScopeCondition] = field(default_factory=list)  # the seed's stated conditions, met per profile
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def spec_hash(self) -> str:
        """Hash of the spec's content (not its file path)."""
        return content_hash({k: v for k, v in self.raw.items() if k != "path"})[:16]

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

    def lrs_for(self, profile: str) -> list[float]:
        """The learning rates every variant is trained at ([] = no sweep: the config's own lr)."""
        return [float(x) for x in self.profile(profile).get("lr_sweep", self.lr_sweep) or []]

    def lr_select_seeds_for(self, profile: str) -> list[int]:
        """The seeds that pick each variant's lr (every lr of the sweep), disjoint from the test seeds; [] when the
        profile has no such seeds (no sweep, or the older `lr_sweep_seeds`)."""
        sel = self.profile(profile).get("lr_select_seeds") or []
        return [int(x) for x in sel] if self.lrs_for(profile) else []

    def lr_sweep_seeds_for(self, profile: str) -> int | None:
        """How many of the profile's seeds (the first ones) run the whole lr sweep; the other seeds run only at
        each variant's best lr, picked on those (None: every seed runs every lr)."""
        k = self.profile(profile).get("lr_sweep_seeds")
        return None if k is None or not self.lrs_for(profile) else int(k)

    @property
    def families(self) -> list[str]:
        """The claim families a spec belongs to (a calibration may name several: 'mixers, mamba')."""
        return [f.strip() for f in self.family.split(",") if f.strip()]


# ---------------------------------------------------------------- parsing


def _req(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return data[key]


TOP_KEYS = ("name", "title", "seed", "quote", "quotes", "kind", "runner", "base", "variants", "seeds", "budget",
            "profiles", "match_params", "metric", "goal", "metrics", "compare", "rule", "checks", "family", "notes",
            "task_reason", "lr_sweep", "reference", "scope")
COMPARE_KEYS = ("variant", "baseline", "expect", "metric", "goal", "label", "min_effect")


def _choice(where: str, field: str, value: Any, allowed: Sequence[str]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{where}: {field}={value!r} is not allowed; expected one of {list(allowed)}")
    return value


def spec_from_dict(data: Mapping[str, Any], path: str = "") -> ExperimentSpec:
    """Validate and build an ExperimentSpec; every error names the file and the field."""
    where = path or "experiment spec"
    _check_keys(where, "", data, TOP_KEYS)
    _check_shapes(data, where)
    name = str(_req(data, "name", where))
    quotes = _quotes(data, where)
    kind = _choice(where, "kind", data.get("kind", "train"), KINDS)
    goal = _choice(where, "goal", data.get("goal", "min"), GOALS)
    metric = str(data.get("metric", "val_loss"))
    variants = {str(k): dict(v or {}) for k, v in (data.get("variants") or {}).items()}
    compare = _comparisons(data.get("compare", []) or [], where, variants, metric, goal)
    if kind == "train":
        if not variants:
            raise ConfigError(f"{where}: a training experiment needs at least one variant")
        if not compare:
            raise ConfigError(f"{where}: a training experiment needs a 'compare' list (what the claim predicts)")
    reference = data.get("reference") or {}
    if not isinstance(reference, Mapping):
        raise ConfigError(f"{where}: reference must be a mapping {{paper, figure, expect}}")
    family = data.get("family", "")
    family = ", ".join(str(f) for f in family) if isinstance(family, (list, tuple)) else str(family)
    mp = _match_params(data.get("match_params"), where, variants)
    checks = list(data.get("checks") or [])
    if kind == "cost" and not checks:
        raise ConfigError(f"{where}: a cost experiment needs a 'checks' list")
    spec = ExperimentSpec(
        name=name, title=str(data.get("title", name)), quotes=quotes, kind=kind,
        runner=str(data.get("runner", "cost" if kind == "cost" else "trainer")), base=dict(data.get("base") or {}),
        variants=variants, seeds=[int(s) for s in data.get("seeds", [0, 1, 2])], budget=dict(data.get("budget") or {}),
        profiles=_profiles(data.get("profiles") or {}, where), match_params=mp, metric=metric, goal=goal,
        metrics=[str(m) for m in data.get("metrics", [])], compare=compare,
        rule=parse_rule(data.get("rule"), where, metric, goal), checks=checks, family=family,
        notes=str(data.get("notes", "")).strip(), path=path,
        task_reason=" ".join(str(data.get("task_reason", "")).split()),
        lr_sweep=_lr_list(data.get("lr_sweep") or [], f"{where}: lr_sweep"), reference=dict(reference),
        scope=parse_scope(data.get("scope"), where, [c.variant for c in compare]),
        raw=json.loads(json.dumps(dict(data), default=str)),
    )
    _check_seed_plan(spec, where)
    return spec


_MAPPINGS = ("base", "variants", "budget", "profiles", "reference")
_LISTS = ("seeds", "compare", "metrics", "checks", "quotes")


def _check_shapes(data: Mapping[str, Any], where: str) -> None:
    """Each section has the YAML shape it must have (a mapping, a list) before anything reads it."""
    for key in _MAPPINGS:
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping (key: value lines), got {data[key]!r}")
    for key in _LISTS:  # seeds and metrics, when present, must be lists (null is no list of seeds)
        if key in data and not isinstance(data[key], list) and (data[key] is not None or key in ("seeds", "metrics")):
            raise ConfigError(f"{where}: {key} must be a list, got {data[key]!r}")
    for section in ("variants", "profiles"):
        for k, v in (data.get(section) or {}).items():
            if v is not None and not isinstance(v, Mapping):
                raise ConfigError(f"{where}: {section}.{k} must be a mapping (dotted key: value), got {v!r}")
    seeds = data.get("seeds") or []
    if any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
        raise ConfigError(f"{where}: seeds={seeds!r} must be a non-empty list of distinct integers")


def _check_seed_plan(spec: ExperimentSpec, where: str) -> None:
    """Every profile's test seeds: distinct integers, at least one for a training spec, none used to pick the lr."""
    for p in PROFILES:
        raw = spec.profile(p).get("seeds", spec.raw.get("seeds", spec.seeds))
        if not isinstance(raw, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in raw) \
                or len(set(raw)) != len(raw) or (spec.kind == "train" and not raw):
            at = f"profiles.{p}.seeds" if "seeds" in spec.profile(p) else "seeds"
            raise ConfigError(f"{where}: {at}={raw!r} must be a non-empty list of distinct integers")
        both = sorted(set(spec.lr_select_seeds_for(p)) & set(spec.seeds_for(p)))
        if both:
            raise ConfigError(f"{where}: profiles.{p}.lr_select_seeds shares seeds {both} with the test seeds: the "
                              "seeds that pick the lr must not be part of the test")


def _quotes(data: Mapping[str, Any], where: str) -> list[Quote]:
    """`quote` + `seed`, and/or a `quotes` list of {seed, text}: at least one."""
    quotes: list[Quote] = []
    if "quote" in data:
        quotes.append(Quote(str(data.get("seed", "")), str(data["quote"]).strip()))
    for i, q in enumerate(data.get("quotes", []) or []):
        if not isinstance(q, Mapping) or "text" not in q:
            raise ConfigError(f"{where}: quotes[{i}] must be a mapping with 'seed' and 'text'")
        quotes.append(Quote(str(q.get("seed", "")), str(q["text"]).strip()))
    if not quotes:
        raise ConfigError(f"{where}: an experiment must quote the seed sentence it tests ('quote' + 'seed')")
    return quotes


def _comparisons(items: Sequence[Any], where: str, variants: Mapping[str, Any], metric: str,
                 goal: str) -> list[Comparison]:
    """The `compare` list: each names variants of the spec (baseline: the first variant)."""
    base_variant = next(iter(variants), None)
    out: list[Comparison] = []
    for i, c in enumerate(items):
        at = f"compare[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where}: {at} must be a mapping")
        v = str(_req(c, "variant", f"{where}: {at}"))
        b = str(c.get("baseline", base_variant))
        for role, vname in (("variant", v), ("baseline", b)):
            if vname not in variants:
                raise ConfigError(f"{where}: {at}.{role}={vname!r} is not a variant; variants: {sorted(variants)}")
        expect = _choice(where, f"{at}.expect", c.get("expect", "worse"), EXPECTS)
        cgoal = _choice(where, f"{at}.goal", c.get("goal", goal), GOALS)
        _check_keys(where, at, c, COMPARE_KEYS)
        cm = c.get("min_effect")
        out.append(Comparison(v, b, expect, str(c.get("metric", metric)), cgoal, str(c.get("label", "")),
                              None if cm is None else _number(cm, f"{where}: {at}.min_effect")))
    return out


def _profiles(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The `profiles` section: quick / standard / full, each a PROFILE_KEYS mapping."""
    profiles = {str(k): dict(v or {}) for k, v in data.items()}
    for p, section in profiles.items():
        if p not in PROFILES:
            raise ConfigError(f"{where}: profiles.{p} is not allowed; expected one of {list(PROFILES)}")
        _check_keys(where, f"profiles.{p}", section, PROFILE_KEYS)
        if "lr_sweep" in section:
            _lr_list(section["lr_sweep"], f"{where}: profiles.{p}.lr_sweep")
        if "max_seeds" in section:
            raise ConfigError(f"{where}: profiles.{p}.max_seeds (adaptive seeds) is no longer accepted: adding seeds "
                              "while a result is undecided inflates the error rates (optional stopping); fix the "
                              "profile's `seeds` in advance (at least 6 for a verdict)")
        _select_seeds(section, f"{where}: profiles.{p}")
        k = section.get("lr_sweep_seeds")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"{where}: profiles.{p}.lr_sweep_seeds={k!r} must be an integer >= 1 (how many seeds "
                              "run the whole lr sweep)")
    return profiles


def _select_seeds(section: Mapping[str, Any], where: str) -> None:
    """lr_select_seeds: distinct integers, not together with lr_sweep_seeds (that none is a test seed is checked
    on the whole spec, _check_seed_plan)."""
    sel = section.get("lr_select_seeds")
    if sel is None:
        return
    if not isinstance(sel, list) or not sel or any(isinstance(x, bool) or not isinstance(x, int) for x in sel) \
            or len(set(sel)) != len(sel):
        raise ConfigError(f"{where}.lr_select_seeds={sel!r} must be a list of distinct integers")
    if "lr_sweep_seeds" in section:
        raise ConfigError(f"{where}: lr_select_seeds and lr_sweep_seeds both pick the lr; keep lr_select_seeds")


def _match_params(mp: Any, where: str, variants: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `match_params` section: {key, [variants], ...}, naming variants of the spec."""
    if mp is None:
        return None
    if not isinstance(mp, Mapping) or "key" not in mp:
        raise ConfigError(f"{where}: match_params must be a mapping with 'key' (the dotted field to adjust)")
    for v in mp.get("variants", []):
        if v not in variants:
            raise ConfigError(f"{where}: match_params.variants names {v!r}, not a variant")
    return dict(mp) or None


def _lr_list(x: Any, where: str) -> list[float]:
    if not isinstance(x, (list, tuple)) or any(_number(v, where) <= 0 for v in x):
        raise ConfigError(f"{where}={x!r} must be a list of positive learning rates")
    if len(set(x)) != len(x):
        raise ConfigError(f"{where}={x!r} lists a learning rate twice")
    return [float(v) for v in x]


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read one YAML/JSON experiment spec."""
    return spec_from_dict(read_mapping(path), str(path))


def builtin_specs() -> list[ExperimentSpec]:
    """Every spec shipped in archlab/experiments/specs, in file order (NN_name.yaml: NN and name unique)."""
    paths = sorted(SPECS_DIR.glob("*.yaml"))
    check_spec_files(paths)
    specs = [load_spec(p) for p in paths]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"{spec.path}: name {spec.name!r} is already used by {seen[spec.name]}")
        seen[spec.name] = spec.path
    return specs


def check_spec_files(paths: Sequence[Path]) -> None:
    """Built-in spec files are named NN_name.yaml with a number no other file uses."""
    numbers: dict[str, Path] = {}
    for p in paths:
        number, sep, _ = p.name.partition("_")
        if not (sep and number.isdigit()):
            raise ConfigError(f"{p}: a built-in spec file is named NN_name.yaml (NN its number)")
        if number in numbers:
            raise ConfigError(f"{p}: number {number} is already used by {numbers[number].name}; the next free "
                              f"number is {max(int(n) for n in numbers) + 1:02d}")
        numbers[number] = p


def calibration_specs(directory: str | Path | None = None) -> list[ExperimentSpec]:
    """Every calibration spec (archlab/experiments/calibration, or `directory`), in file order."""
    return [load_spec(p) for p in sorted(Path(directory or CALIBRATION_DIR).glob("*.yaml"))]
