"""Which claims' verdicts changed between two sweeps (e.g. the v1 table and the v2 pass), and the reason the records
themselves give: a new or dropped claim, a family shown uncalibrated, a seed condition the set-up does not meet, a
spec amended after registration, a verdict that depends on the budget — else the decision procedure itself (the
same claim, re-decided under the current rule). Verdicts are compared by their head (supported,
contradicted, …), so a label's scale or wording alone is no change.

`python -m archlab.experiments.report.claims_table --verdicts NEW.json --previous OLD.json [--write]` puts the
table into docs/claims.md (markers CHANGES_START / CHANGES_END)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from archlab.experiments.judge.results import verdict_head
from archlab.experiments.report.claim_rows import short_registration
from archlab.experiments.report.fmt import md_cell

CHANGES_START = ("<!-- verdict-changes:start (generated: python -m archlab.experiments.report.claims_table "
                 "--verdicts NEW.json --previous OLD.json --write) -->")
CHANGES_END = "<!-- verdict-changes:end -->"


def decision_head(shown: str) -> str:
    """The head of the decision inside a label: 'uncalibrated (supported at …)' → 'supported'."""
    text = str(shown)
    if text.startswith("uncalibrated (") and text.endswith(")"):
        text = text[len("uncalibrated ("):-1]
    return verdict_head(text)


def change_reason(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """Why a claim's verdict head differs between two records (either may be missing), from what they record."""
    if old is None:
        return "new claim (not in the previous sweep)"
    if new is None:
        return "not in this sweep"
    shown = str(new["verdict"])
    reasons = []
    if shown.startswith("uncalibrated"):
        reasons.append(f"the family's calibration did not reproduce: decision {decision_head(shown)}, "
                       "not counted as decided")
    if shown.startswith("out of scope") or new.get("unmet_scope"):
        conds = "; ".join(str(c.get("condition", c)) for c in new.get("unmet_scope") or [])
        reasons.append(f"outside the seed's stated conditions ({conds})" if conds else "outside the seed's stated "
                       "conditions")
    if str(new.get("registration") or "").startswith("amended"):
        reasons.append(f"spec {short_registration(str(new['registration']))}")
    if str(new.get("budget_check") or "").startswith("budget-dependent"):
        reasons.append(str(new["budget_check"]))
    if not reasons:
        reasons.append("re-decided under the current procedure")
    return "; ".join(reasons)


def _without_scope_text(verdict: str) -> str:
    """A comparison's verdict without the scope conditions it repeats (the row's reasons name them once):
    'supported (outside the seed's stated conditions: …)' → 'supported'; 'out of scope at this scale (…)' → 'out of
    scope at this scale'."""
    for marker in (" (outside the seed's stated conditions", "out of scope at this scale ("):
        i = verdict.find(marker)
        if i >= 0:
            cut = verdict[:i] + ("out of scope at this scale" if marker.startswith("out") else "")
            return cut + ")" * (cut.count("(") - cut.count(")"))
    return verdict


def _comparison_line(c: Mapping[str, Any]) -> str:
    """'d 0.0107 [0.0038, 0.0175], n 3 → supported' — one comparison's paired difference, seeds and verdict."""
    n = f", n {c['n']}" if c.get("n") not in (None, "") else ""
    return f"d {c.get('diff', '?')}{n} → {_without_scope_text(str(c.get('verdict', '?')))}"


def evidence(previous: Mapping[str, Any], current: Mapping[str, Any], claim: str) -> str:
    """Each comparison of `claim` in both sweeps, then and now: 'X worse than Y: before d … n 3 → supported; now d
    … n 10 → inconclusive (…)' ('' when neither sweep has a comparison of it, e.g. a computed claim)."""
    def of(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        return {str(c.get("comparison")): c for c in report.get("comparisons", []) if c.get("claim") == claim}
    old, new = of(previous), of(current)
    parts = []
    for name in [*new, *(k for k in old if k not in new)]:
        before = f"before {_comparison_line(old[name])}" if name in old else "not compared before"
        now = f"now {_comparison_line(new[name])}" if name in new else "not compared now"
        parts.append(f"{name}: {before}; {now}")
    return " · ".join(parts)


def verdict_changes(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per claim whose verdict head differs (or that is in only one of the two sweeps): claim, before,
    after, why (the records' reasons, then each comparison's difference and verdict then and now) — in the current
    sweep's order, then the claims it no longer has."""
    old = {c["claim"]: c for c in previous["claims"]}
    new = {c["claim"]: c for c in current["claims"]}
    rows = []
    for name in [*new, *(n for n in old if n not in new)]:
        a, b = old.get(name), new.get(name)
        if a is not None and b is not None and verdict_head(a["verdict"]) == verdict_head(b["verdict"]):
            continue
        why = change_reason(a, b)
        if a is not None and b is not None and (seen := evidence(previous, current, name)):
            why = f"{why} — {seen}"
        rows.append({"claim": name, "before": "—" if a is None else str(a["verdict"]),
                     "after": "—" if b is None else str(b["verdict"]), "why": why})
    return rows


def transitions(rows: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """How many changed claims went from each head to each head ('supported → inconclusive': 3), claims present in
    both sweeps only."""
    out: dict[str, int] = {}
    for r in rows:
        if r["before"] != "—" and r["after"] != "—":
            key = f"{verdict_head(r['before'])} → {verdict_head(r['after'])}"
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def changes_table(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The markdown block: a counts line (claims in both, changed, by transition; new; dropped), then the table."""
    rows = verdict_changes(previous, current)
    both = len({c["claim"] for c in previous["claims"]} & {c["claim"] for c in current["claims"]})
    moved = [r for r in rows if r["before"] != "—" and r["after"] != "—"]
    new = sum(r["before"] == "—" for r in rows)
    gone = sum(r["after"] == "—" for r in rows)
    by = ", ".join(f"{n} {k}" for k, n in transitions(rows).items())
    head = (f"Of {both} claims in both sweeps, **{len(moved)} changed verdict**" + (f" ({by})" if by else "")
            + f"; {new} new claim(s), {gone} no longer run.")
    lines = [head, "", "| claim | before | after | why (from the records) |", "|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(md_cell(r[k]) for k in ("claim", "before", "after", "why")) + " |")
    return "\n".join(lines)
