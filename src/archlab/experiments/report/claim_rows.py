"""One record per claim for the reports and verdicts.json: the verdict as shown (its label at its scale), the plain
decision, the scale (parameters, steps, tokens), the half-budget check, the registration status and the seed's
conditions the set-up does not meet."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from archlab.experiments.judge.results import ExperimentResult, human, verdict_head

SCALE_COLUMNS = (("params", "params"), ("steps", "steps"), ("tokens", "tokens"), ("budget_check", "at half budget"),
                 ("registration", "registration"))


def claim_record(r: ExperimentResult) -> dict[str, Any]:
    """A claim's row: claim, title, verdict (as shown), decision, scale, half budget, registration, scope."""
    scale = r.scale if r.spec.kind == "train" else None
    return {"claim": r.spec.name, "title": r.spec.title, "verdict": r.shown_verdict, "decision": r.verdict,
            "params": scale.params if scale else None, "steps": scale.steps if scale else None,
            "tokens": scale.tokens if scale else None, "half_budget": r.half_budget or None,
            "budget_check": r.budget_check or None, "registration": r.registration or None,
            "pre_registered": bool(r.pre_registered) if r.registration else None,
            "unmet_scope": [{"condition": c.condition, "why": c.why} for c in r.unmet_scope]}


def cell(record: Mapping[str, Any], key: str) -> str:
    """A record's value as a table cell: counts in words (0.2M), '—' for a value the record lacks."""
    v = record.get(key)
    if v is None or v == "":
        return "—"
    if key in ("params", "tokens") and isinstance(v, (int, float)):
        return human(v)
    return str(v)


def registration_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """How many claims' verdicts are pre-registered, amended or not registered (None: no record says)."""
    known = [c for c in records if c.get("registration")]
    if not known:
        return None
    amended = sum(str(c["registration"]).startswith("amended") for c in known)
    pre = sum(bool(c.get("pre_registered")) for c in known)
    return {"pre-registered": pre, "amended": amended, "not registered": len(records) - pre - amended}


def short_registration(text: str) -> str:
    """A table's short form of a registration status: 'amended 2026-12-07 (procedure, seed plan); 2026-12-08
    (rule.outcome, rule.solved_at)' for 'amended after registration (procedure_version, profiles.standard.seeds,
    2026-12-07: reason…; rule.outcome, rule.solved_at, 2026-12-08: reason…)' — each amendment's date and the fields
    it changed, grouped; the reasons stay in the full record. Other statuses are kept as they are."""
    text = str(text)
    if not text.startswith("amended after registration ("):
        return text
    parts = []
    for m in re.finditer(r"(?:\(|; )((?:[\w.]+, )*[\w.]+), (\d{4}-\d{2}-\d{2}):", text):
        named: list[str] = []
        for f in m.group(1).split(", "):
            name = "procedure" if f == "procedure_version" else "seed plan" if f.startswith("profiles.") else f
            if name not in named:
                named.append(name)
        parts.append(f"{m.group(2)} ({', '.join(named)})")
    return "amended " + "; ".join(parts) if parts else text


def registration_text(records: Sequence[Mapping[str, Any]]) -> str:
    """'; 30 pre-registered, 1 amended, 2 not registered' ('' when the records carry no registration)."""
    n = registration_counts(records)
    return "" if n is None else "; " + ", ".join(f"{v} {k}" for k, v in n.items())


def head_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many claims fall under each verdict head (supported, contradicted, out of scope, …)."""
    out: dict[str, int] = {}
    for c in records:
        h = verdict_head(c["verdict"])
        out[h] = out.get(h, 0) + 1
    return out
