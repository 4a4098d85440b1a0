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


@dataclass(frozen=True)
class ScopeCondition:
    """One condition of the seed sentence, whether each profile meets it, and why (one line)."""

    condition: str
    met: Mapping[str, bool]  # profile -> met
    why: str

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


def parse_scope(items: Any, where: str) -> list[ScopeCondition]:
    """The optional `scope:` list: each item {condition, met, why}; every error names the item and the field."""
    if items is None:
        return []
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise ConfigError(f"{where}: scope must be a list of {{condition, met, why}}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}: scope[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{at} must be a mapping {{condition, met, why}}")
        unknown = sorted(set(item) - set(SCOPE_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {unknown}; allowed: {list(SCOPE_KEYS)}")
        for key in SCOPE_KEYS:
            if key not in item:
                raise ConfigError(f"{at}: missing required key {key!r}")
        condition, why = " ".join(str(item["condition"]).split()), " ".join(str(item["why"]).split())
        if not condition or not why:
            raise ConfigError(f"{at}: condition and why must be non-empty (the seed's words; one line why)")
        out.append(ScopeCondition(condition, _met(item["met"], at), why))
    return out


def unmet(scope: Sequence[ScopeCondition], profile: str) -> list[ScopeCondition]:
    """The conditions a profile's set-up does not meet."""
    return [c for c in scope if not c.met_at(profile)]
