"""Registration: a committed record (registration.json) of everything that decides a built-in spec's verdict — task,
metric, goal, comparisons, rule, budget, seed plan, parameter matching, runner and the decision procedure's
version — with its hash and date, so that a verdict can say whether it was decided by the protocol fixed before
(`registered`), by one changed since (`amended after registration`) or by none (`not registered`).

Quotes, titles, notes, reasons and scope text are not part of it: they explain a verdict, they do not decide it;
nor are IMPLEMENTATION_KEYS, which pick a kernel (a fast path tested to agree with the plain one within the fp32
tolerance), not what is measured — they are part of each run's key, so its runs stay reproducible.
A changed entry is never overwritten silently: `archlab claims --register --amend "reason"` appends to the spec's
history (old hash, new hash, date, the fields that changed, the reason)."""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.spec import rule as rule_mod
from archlab.experiments.spec.identity import content_hash
from archlab.experiments.spec.schema import PROFILES, ExperimentSpec
from archlab.fileio import atomic_write_text

REGISTRATION_FILE = Path(__file__).resolve().parents[1] / "registration.json"
RULE_FIELDS = ("alpha", "min_effect", "relative", "gate", "gate_metric", "learned", "outcome", "solved_at",
               "censored_at")
SEED_PLAN_KEYS = ("lr_sweep_seeds", "lr_select_seeds", "max_seeds")
FORMAT = 1
IMPLEMENTATION_KEYS = ("model.mixer.ssm.scan",)  # chunked / reference / compiled: the same scan, other kernels


def _without_implementation(mapping: Any, path: str) -> Any:
    """A copy of a (nested or dotted-key) mapping without the entry at dotted `path`; sections it leaves empty are
    dropped too, so a spec that never named the key hashes as before."""
    if not isinstance(mapping, Mapping):
        return mapping
    out = {}
    for k, v in mapping.items():
        if k == path:
            continue
        if path.startswith(f"{k}.") and isinstance(v, Mapping):
            v = _without_implementation(v, path[len(k) + 1:])
            if not v:
                continue
        out[k] = v
    return out


def _decisive_config(mapping: Mapping[str, Any]) -> Any:
    for path in IMPLEMENTATION_KEYS:
        mapping = _without_implementation(mapping, path)
    return mapping


def _plain(x: Any) -> Any:
    """A JSON-plain copy (dataclasses as dicts, tuples as lists)."""
    return json.loads(json.dumps(x, sort_keys=True, default=lambda o: asdict(o) if is_dataclass(o) else str(o)))


def decisive_fields(spec: ExperimentSpec) -> dict[str, Any]:
    """Everything that decides the spec's verdict (not its quotes, title, notes, reasons or scope text)."""
    profiles = {}
    for p in PROFILES:
        sec = spec.profile(p)
        variant_overrides = {v: _decisive_config(o) for v, o in sec.get("variant_overrides", {}).items()}
        profiles[p] = {"overrides": _decisive_config(sec.get("overrides", {})), "variant_overrides": variant_overrides,
                       "budget": spec.budget_for(p), "seeds": spec.seeds_for(p), "lr_sweep": spec.lrs_for(p),
                       **{k: sec[k] for k in SEED_PLAN_KEYS if k in sec}}
    compare = [{"variant": c.variant, "baseline": c.baseline, "expect": c.expect, "metric": c.metric,
                "goal": c.goal, "min_effect": c.min_effect} for c in spec.compare]
    task = {"base": _decisive_config(spec.base), "variants": {v: _decisive_config(o) for v, o in spec.variants.items()}}
    fields = {"procedure_version": getattr(rule_mod, "PROCEDURE_VERSION", "1"), "kind": spec.kind,
              "runner": spec.runner, "task": task, "metric": spec.metric,
              "goal": spec.goal, "compare": compare,
              "rule": {k: getattr(spec.rule, k) for k in RULE_FIELDS if hasattr(spec.rule, k)},
              "match_params": spec.match_params, "profiles": profiles}
    if spec.kind == "cost":
        fields["checks"] = spec.checks
    return _plain(fields)


def decisive_hash(fields: Mapping[str, Any]) -> str:
    """The hash of a spec's decisive fields (16 hex digits)."""
    return content_hash(fields)[:16]


def _flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, Mapping) and x:
        return {k: v for key, val in x.items() for k, v in _flatten(val, f"{prefix}.{key}" if prefix else
                                                                        str(key)).items()}
    if isinstance(x, list) and x and any(isinstance(v, (Mapping, list)) for v in x):
        return {k: v for i, val in enumerate(x) for k, v in _flatten(val, f"{prefix}[{i}]").items()}
    return {prefix: x}


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The dotted paths whose values differ between two sets of decisive fields (e.g. 'rule.min_effect')."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, None) != b.get(k, None) or (k in a) != (k in b))


def load_registry(path: str | Path | None = None) -> dict[str, Any]:
    """The registration file ({'format', 'specs': {name: entry}}); an empty one when it does not exist."""
    p = Path(path or REGISTRATION_FILE)
    if not p.exists():
        return {"format": FORMAT, "specs": {}}
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("specs"), dict):
        raise ConfigError(f"{p}: not a registration file (expected {{'format', 'specs': {{...}}}})")
    return data


@dataclass(frozen=True)
class Status:
    """A spec's registration status: 'registered', 'amended' or 'not registered', and the words a report shows."""

    kind: str
    text: str

    @property
    def pre_registered(self) -> bool:
        """Whether a verdict of this spec counts as pre-registered (registered and never amended)."""
        return self.kind == "registered"


def _amended_text(history: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"{', '.join(h.get('fields_changed', [])) or 'no field'}, {h.get('date', '?')}: {h.get('reason', '')}"
             for h in history]
    return f"amended after registration ({'; '.join(parts)})"


def status_of(spec: ExperimentSpec, registry: Mapping[str, Any] | None = None) -> Status:
    """Whether the spec as it is now was registered, amended after registration, or not registered."""
    registry = load_registry() if registry is None else registry
    entry = registry.get("specs", {}).get(spec.name)
    if entry is None:
        return Status("not registered", "not registered")
    fields = decisive_fields(spec)
    if decisive_hash(fields) != entry.get("hash"):
        changed = changed_fields(entry.get("fields", {}), fields)
        return Status("not registered", f"not registered (changed since its registration of {entry.get('date')}: "
                                        f"{', '.join(changed) or 'the decision procedure'})")
    history = entry.get("history") or []
    if history:
        return Status("amended", _amended_text(history))
    return Status("registered", f"registered ({entry.get('date')})")


def register(specs: Sequence[ExperimentSpec], path: str | Path | None = None, amend: str | None = None,
             today: str | None = None) -> list[str]:
    """Record every spec's decisive fields, hash and date; a spec whose registered hash differs is refused unless
    `amend` (the reason) is given, which appends to its history. Returns one line per spec."""
    p = Path(path or REGISTRATION_FILE)
    registry = load_registry(p)
    date = today or datetime.date.today().isoformat()
    entries, lines, refused = registry["specs"], [], []
    for spec in specs:
        fields = decisive_fields(spec)
        h, old = decisive_hash(fields), entries.get(spec.name)
        if old is None:
            entries[spec.name] = {"hash": h, "date": date, "fields": fields, "history": []}
            lines.append(f"{spec.name}: registered ({date}, {h})")
        elif old.get("hash") == h:
            lines.append(f"{spec.name}: unchanged ({h})")
        elif not amend:
            refused.append(f"{spec.name} ({', '.join(changed_fields(old.get('fields', {}), fields))})")
        else:
            change = {"old_hash": old.get("hash"), "new_hash": h, "date": date, "reason": " ".join(amend.split()),
                      "fields_changed": changed_fields(old.get("fields", {}), fields)}
            old.update(hash=h, fields=fields, history=[*(old.get("history") or []), change])
            lines.append(f"{spec.name}: amended ({', '.join(change['fields_changed'])}; {change['reason']})")
    if refused:
        raise ConfigError(f"registration of {len(refused)} spec(s) differs from {p}: {'; '.join(refused)}; "
                          "an amendment needs a reason: --register --amend \"why\" (it is recorded, and their "
                          "verdicts are no longer counted as pre-registered)")
    registry["format"] = FORMAT
    registry["specs"] = dict(sorted(entries.items()))
    atomic_write_text(p, json.dumps(registry, indent=1, sort_keys=False, ensure_ascii=False) + "\n")
    return lines
