"""What both reports (HTML and Markdown) and verdicts.json say, as data and sentences: one row per comparison, one
per cost check, what was run for each claim, its protocol lines. Numbers to three significant figures (fmt.sig)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from archlab.experiments.judge.results import ExperimentResult, verdict_head
from archlab.experiments.report.claim_rows import claim_record, head_counts
from archlab.experiments.report.fmt import interval, pm, sig

SMOKE = "smoke test — indicative only"
SMOKE_TEXT = ("The quick profile uses tiny models, short budgets and few seeds so that the whole suite "
              "runs in about 20 minutes on 2 CPU cores; its verdicts are not findings (run --standard for those).")
CALIBRATION_TEXT = ("A calibration reproduces, at small scale, a published result whose direction is known; it "
                    "'reproduces' when every one of its comparisons is supported. A claim family whose calibration "
                    "failed or was not run (archlab claims --calibrate) has its verdicts shown as "
                    "'uncalibrated (verdict)'.")


def css_class(verdict: str) -> str:
    """'v-supported', 'v-no-verdict', 'v-uncalibrated', 'v-out-of-scope' … for a verdict or label."""
    return "v-" + verdict_head(verdict).replace(" ", "-")


def _gate_text(g: dict) -> str:
    """The gate's levels, e.g. 'val_acc: chance 0.07, plateau 0.35, ceiling 1; learned ≥ 0.4'."""
    b = g.get("baseline", {})
    if "level" not in b:
        return "none"
    op = "≥" if g.get("goal", "max") == "max" else "≤"
    return (f"{g.get('metric', '')}: chance {sig(b.get('chance'))}, plateau {sig(b.get('plateau'))}, ceiling "
            f"{sig(b.get('ceiling_level'))}; learned {op} {sig(b.get('level'))}").strip(": ")


def _flags_text(g: dict) -> str:
    """Per-seed gate flags: L (learned) ✓/✗ and C (at ceiling) ●/· for each arm, seeds in order."""
    parts = []
    for arm in ("baseline", "variant"):
        a = g.get(arm, {})
        learned = "".join("✓" if x else "✗" for x in a.get("learned", []))
        ceil = "".join("●" if x else "·" for x in a.get("ceiling", []))
        parts.append(f"{arm} L {learned or '–'} C {ceil or '–'}")
    return "; ".join(parts) + f" (seeds {','.join(str(s) for s in g.get('seeds', []))})"


def _arm(r: ExperimentResult, name: str, s) -> str:
    lr = r.best_lr.get(name)
    return f"{name}: {pm(s.mean, s.std, s.n)}" + (f" @lr {sig(lr)}" if lr is not None else "")


def diff_text(v) -> str:
    """A comparison's effect as the table shows it: 'd [t interval]' for a continuous or time outcome; for a solved
    outcome the difference of solved rates with the counts it comes from ('0.6 (variant solved 0/10, baseline
    6/10)') — the t interval is of the raw metric, not of the rate difference, so it is not shown there."""
    if v.outcome == "solved" and len(v.solved) == 2:
        return f"{sig(v.d)} (variant solved {v.solved[0]}/{v.n}, baseline {v.solved[1]}/{v.n})"
    return interval(v.d, v.ci_lo, v.ci_hi)


def verdict_rows(results: Sequence[ExperimentResult]) -> list[dict[str, str]]:
    """One row per comparison (and per cost check) across all experiments."""
    rows = []
    for r in results:
        seeds = ",".join(q.seed for q in r.spec.quotes)
        if r.spec.kind == "cost":
            for c in r.checks:
                rows.append({"kind": "check", "claim": r.spec.name, "seed": seeds, "comparison": c["name"],
                             "metric": c.get("unit", ""), "baseline": f"seed: {sig(c.get('claimed'))}",
                             "variant": f"computed: {sig(c.get('computed'))}",
                             "diff": sig(c.get("rel_error")), "p": "exact", "p_adj": "–", "p_tost": "–", "q": "–",
                             "mde": "–", "gate": "–", "flags": "–", "verdict": c["verdict"],
                             "claim_verdict": r.shown_verdict, "n": "–", "code": "–",
                             "stated": sig(c.get("claimed")), "computed": sig(c.get("computed")),
                             "rel_error": sig(c.get("rel_error"))})
            continue
        for cr in r.comparisons:
            v, c = cr.verdict, cr.comparison
            label = r.comparison_label(cr)
            rows.append({"kind": "comparison", "claim": r.spec.name, "seed": seeds, "comparison": cr.label,
                         "metric": f"{c.metric} ({c.goal})",
                         "baseline": _arm(r, c.baseline, cr.baseline), "variant": _arm(r, c.variant, cr.variant),
                         "diff": diff_text(v), "p": sig(v.p),
                         "p_adj": sig(v.p_adj), "p_tost": sig(v.p_tost_adj), "q": sig(v.q),
                         "mde": f"{sig(v.mde)} (m {sig(v.min_effect)})"
                                + (" underpowered" if v.underpowered and v.verdict == "inconclusive" else ""),
                         "gate": _gate_text(v.gates), "flags": _flags_text(v.gates),
                         "verdict": label, "claim_verdict": r.shown_verdict, "n": str(v.n),
                         "code": ",".join(r.code_hashes)})
    return rows


# the comparison table (after its verdict column), the per-claim detail table and the cost-check table
COLUMNS = (("comparison", "comparison"), ("claim", "claim"), ("metric", "metric"), ("baseline", "baseline"),
           ("variant", "variant"), ("diff", "d [95% CI] or solved rates"), ("p", "p"), ("p_adj", "p (Holm)"),
           ("p_tost", "p TOST (Holm)"), ("q", "q (BH, sweep)"), ("mde", "MDE 80%"), ("n", "seeds"))
DETAIL_COLUMNS = (("comparison", "comparison"), ("gate", "gate"), ("flags", "per-seed learned/ceiling"),
                  ("code", "code"))
CHECK_COLUMNS = (("comparison", "check"), ("claim", "claim"), ("seed", "seed"), ("metric", "unit"),
                 ("stated", "stated by the seed"), ("computed", "computed"), ("rel_error", "relative error"))


def claim_summary(results: Sequence[ExperimentResult]) -> list[tuple[str, str, str]]:
    """(claim, title, verdict as shown: 'uncalibrated (…)' for an uncalibrated family) per experiment."""
    return [(r.spec.name, r.spec.title, r.shown_verdict) for r in results]


def _what_was_run(r: ExperimentResult) -> dict[str, Any]:
    spec = r.spec
    if spec.kind == "cost":
        return {"kind": "cost model (no training)", "checks": len(r.checks)}
    params = {}
    for p in r.plans:
        params.setdefault(p.variant, p.n_params)
    walls = [x["wall_time_s"] for runs in r.runs.values() for x in runs if x.get("wall_time_s")]
    return {
        "profile": r.profile,
        "runner": spec.runner,
        "seeds": sorted({p.seed for p in r.plans}),
        "budget": r.plans[0].budget if r.plans else spec.budget,
        "lr_sweep": {v: {f"{lr:g}": {"score": sig(sc), "seeds": n} for lr, (sc, n) in t.items()
                         if lr is not None} for v, t in r.lr_table.items()} or None,
        "judged_at_lr": {v: lr for v, lr in r.best_lr.items() if lr is not None} or None,
        "code_hash": r.code_hashes,
        "calibration": r.calibration or (f"calibrated: {', '.join(r.calibrated_by)} reproduced" if r.calibrated_by
                                         else "no calibration checked"),
        "variants": {v: {"diff": spec.variants.get(v, {}), "params": params.get(v),
                         "runs_done": len(r.runs.get(v, []))} for v in spec.variants},
        "total_run_time_s": round(sum(walls), 1) if walls else None,
    }


def base_config(r: ExperimentResult) -> str:
    """YAML of the resolved base config (first variant) as it was run."""
    if not r.plans:
        return yaml.safe_dump(r.spec.base, sort_keys=False)
    first = next(iter(r.spec.variants), None)
    cfg = next((p.config for p in r.plans if p.variant == first), r.plans[0].config)
    return yaml.safe_dump(cfg, sort_keys=False)


def protocol_lines(r: ExperimentResult) -> list[str]:
    """Registration status, the seed's unmet conditions and the half-budget check of one claim, as sentences."""
    out = [f"Registration: {r.registration}."] if r.registration else []
    out += [f"Outside the seed's stated conditions at the {r.profile} profile: {c.condition} — {c.why}."
            for c in r.unmet_scope]
    if r.budget_check:
        out.append(f"Half budget: {r.budget_check}" + (f" ({r.half_budget})." if r.half_budget and
                                                       r.budget_check.startswith("same") else "."))
    return out


def shown_calibrations(results: Sequence[ExperimentResult], cals: Sequence[Any] | None) -> list[Any]:
    """The calibrations a report shows: those of the families whose claims ran (all of them in a calibration
    report, which has no claims)."""
    if not cals:
        return []
    families = {f for r in results for f in r.spec.families}
    return [c for c in cals if not results or c.spec.family in families]


def _span(values: list[Any]) -> str:
    vals = sorted(v for v in values if isinstance(v, (int, float)))
    if not vals:
        return "–"
    return sig(vals[0]) if vals[0] == vals[-1] else f"{sig(vals[0])} to {sig(vals[-1])}"


def summary_lines(results: Sequence[ExperimentResult], command: str = "",
                  cals: Sequence[Any] | None = None) -> list[str]:
    """The report's opening: how many claims and their verdicts, what ran, the profile, the scale, calibrations."""
    records = [claim_record(r) for r in results]
    train = [r for r in results if r.spec.kind == "train"]
    counts = ", ".join(f"{n} {k}" for k, n in sorted(head_counts(records).items(), key=lambda kv: -kv[1]))
    out = [f"Claims: {len(results)} ({len(train)} trained, {len(results) - len(train)} computed by the cost model)"
           + (f" — {counts}" if counts else "")]
    if train:
        runs = sum(len(v) for r in train for v in r.runs.values())
        planned = sum(len(r.plans) for r in train)
        seeds = sorted({p.seed for r in train for p in r.plans})
        walls = sum(x.get("wall_time_s") or 0 for r in train for v in r.runs.values() for x in v)
        out.append(f"What ran: {runs} training runs finished of {planned} planned, seeds {_span(seeds)}, "
                   f"{sig(walls)} s of run time")
        profiles = sorted({r.profile for r in train})
        out.append(f"Profile: {', '.join(profiles)}; scale: parameters {_span([c['params'] for c in records])}, "
                   f"steps {_span([c['steps'] for c in records])}, tokens {_span([c['tokens'] for c in records])}")
    shown = shown_calibrations(results, cals)
    if shown:
        ok = sum(bool(c.reproduced) for c in shown)
        out.append(f"Calibrations of the families that ran: {ok} of {len(shown)} reproduced")
    if command:
        out.append(f"Produced by `{command}`")
    return out
