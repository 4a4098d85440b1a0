"""A spec's `scope:` — the conditions the seed sentence states (e.g. "at the scale of a large language model") and
whether each profile's set-up meets them; a claim tested outside them cannot be contradicted, only left out of
scope (archlab.experiments.judge.results)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archlab.config import ConfigError

SCOPE_PROFILES = ("quick", "standard", "full")
SCOPE_KEYS = ("condition", "met", "why")
OPTIONAL_KEYS = ("comparisons",)  # the variants (of `compare`) whose comparison the condition is about; default all


@dataclass(frozen=True)
class ScopeCondition:
    """One condition of the seed sentence, whether each profile meets it, and why (one line)."""

    condition: str
    met: Mapping[str, bool]  # profile -> met
    why: str
    comparisons: tuple[str, ...] = ()  # the compared variants it concerns; () = every comparison of the claim

    def applies_to(self, variant: str) -> bool:
        """Whether the condition concerns the comparison of `variant` (a claim-wide one concerns them all)."""
        return not self.comparisons or variant in self.comparisons

    def met_at(self, profile: str) -> bool:
        """Whether the set-up of `profile` meets the condition (an unknown profile: not met)."""
        return bool(self.met.get(profile, False))


def _met(value: Any, where: str) -> dict[str, bool]:
    """`met: true|false` (every profile) or `{quick: .., standard: .., full: ..}` (each profile stated)."""
    if isinstance(value, bool):
        return {p: value for p in SCOPE_PROFILES}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.met={value!r} must be true, false or {{quick: .., standard: .., full: ..}}")
    extra = sorted(set(value) - set(SCOPE_PROFILES))
    missing = [p for p in SCOPE_PROFILES if p not in value]
    if extra or missing:
        raise ConfigError(f"{where}.met must state every profile {list(SCOPE_PROFILES)} and no other "
                          f"(unknown: {extra}, missing: {missing})")
    for p, v in value.items():
        if not isinstance(v, bool):
            raise ConfigError(f"{where}.met.{p}={v!r} must be true or false")
    return {str(p): bool(v) for p, v in value.items()}


def _comparisons(value: Any, at: str, compared: Sequence[str] | None) -> tuple[str, ...]:
    """`comparisons: [variant, ...]`: names of compared variants (each must be the `variant` of a comparison)."""
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value or \
            not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{at}.comparisons={value!r} must be a non-empty list of compared variant names")
    if compared is not None:
        unknown = [v for v in value if v not in compared]
        if unknown:
            raise ConfigError(f"{at}.comparisons: {unknown} compared nowhere; the compared variants are "
                              f"{sorted(set(compared))}")
    return tuple(value)


def parse_scope(items: Any, where: str, compared: Sequence[str] | None = None) -> list[ScopeCondition]:
    """The optional `scope:` list: each item {condition, met, why[, comparisons]}; every error names the item and
    the field. `compared`: the variants the spec compares (to check `comparisons` against)."""
    if items is None:
        return []
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise ConfigError(f"{where}: scope must be a list of {{condition, met, why}}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}: scope[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{at} must be a mapping {{condition, met, why}}")
        unknown = sorted(set(item) - set(SCOPE_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {unknown}; allowed: {list(SCOPE_KEYS + OPTIONAL_KEYS)}")
        for key in SCOPE_KEYS:
            if key not in item:
                raise ConfigError(f"{at}: missing required key {key!r}")
        condition, why = " ".join(str(item["condition"]).split()), " ".join(str(item["why"]).split())
        if not condition or not why:
            raise ConfigError(f"{at}: condition and why must be non-empty (the seed's words; one line why)")
        out.append(ScopeCondition(condition, _met(item["met"], at), why,
                                  _comparisons(item.get("comparisons"), at, compared)))
    return out


def unmet(scope: Sequence[ScopeCondition], profile: str) -> list[ScopeCondition]:
    """The conditions a profile's set-up does not meet."""
    return [c for c in scope if not c.met_at(profile)]
