"""Reports: one self-contained HTML page (figures embedded as base64 PNG) and a Markdown twin.

Both carry, in this order: the smoke-test banner (quick profile), the calibrations (✔ reproduced / ✗ not,
the paper's figure and ours), the verdict table (one row per comparison: label, d, CI, p, Holm-adjusted p,
TOST p, minimum detectable effect, seeds, the gate's levels and per-seed learned/ceiling flags, the lr each
arm is judged at, the code hash that produced the runs), the rule used to decide, and per claim the quoted
seed sentence, what was run (base config, variant diffs, parameter counts, seeds, budget, lr sweep) and its
figures: loss curves (mean over seeds, min–max band) and a bar chart of the final metric.
"""
from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from archlab.experiments.judge.results import ExperimentResult, verdict_head
from archlab.experiments.judge.verdict import RULE_TEXT
from archlab.experiments.report.claim_rows import (
    SCALE_COLUMNS,
    cell,
    claim_record,
    head_counts,
    registration_text,
)
from archlab.experiments.report.figures import (  # noqa: F401  (re-exported)
    curve_metric,
    figure_bars,
    figure_checks,
    figure_curves,
    figures,
)
from archlab.fileio import atomic_write_bytes, atomic_write_text

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


# ---------------------------------------------------------------- tables


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.{digits}g}"
    return str(x)


def _gate_text(g: dict) -> str:
    """The gate's levels, e.g. 'val_acc: chance 0.07, plateau 0.35, ceiling 1; learned ≥ 0.4'."""
    b = g.get("baseline", {})
    if "level" not in b:
        return "none"
    op = "≥" if g.get("goal", "max") == "max" else "≤"
    return (f"{g.get('metric', '')}: chance {_fmt(b.get('chance'))}, plateau {_fmt(b.get('plateau'))}, ceiling "
            f"{_fmt(b.get('ceiling_level'))}; learned {op} {_fmt(b.get('level'))}").strip(": ")


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
    return f"{name}: {s.fmt()}" + (f" @lr {lr:g}" if lr is not None else "")


def verdict_rows(results: Sequence[ExperimentResult]) -> list[dict[str, str]]:
    """One row per comparison (and per cost check) across all experiments."""
    rows = []
    for r in results:
        seeds = ",".join(q.seed for q in r.spec.quotes)
        if r.spec.kind == "cost":
            for c in r.checks:
                rows.append({"claim": r.spec.name, "seed": seeds, "comparison": c["name"],
                             "metric": c.get("unit", ""), "baseline": f"seed: {_fmt(c.get('claimed'))}",
                             "variant": f"computed: {_fmt(c.get('computed'))}",
                             "diff": _fmt(c.get("rel_error")), "p": "exact", "p_adj": "–", "p_tost": "–",
                             "mde": "–", "gate": "–", "flags": "–", "verdict": c["verdict"],
                             "claim_verdict": r.shown_verdict, "n": "–", "code": "–"})
            continue
        for cr in r.comparisons:
            v, c = cr.verdict, cr.comparison
            label = r.comparison_label(cr)
            rows.append({"claim": r.spec.name, "seed": seeds, "comparison": cr.label,
                         "metric": f"{c.metric} ({c.goal})",
                         "baseline": _arm(r, c.baseline, cr.baseline), "variant": _arm(r, c.variant, cr.variant),
                         "diff": f"{_fmt(v.d)} [{_fmt(v.ci_lo)}, {_fmt(v.ci_hi)}]", "p": _fmt(v.p, 2),
                         "p_adj": _fmt(v.p_adj, 2), "p_tost": _fmt(v.p_tost_adj, 2),
                         "mde": f"{_fmt(v.mde, 3)} (m {_fmt(v.min_effect, 3)})"
                                + (" underpowered" if v.underpowered and v.verdict == "inconclusive" else ""),
                         "gate": _gate_text(v.gates), "flags": _flags_text(v.gates),
                         "verdict": label, "claim_verdict": r.shown_verdict, "n": str(v.n),
                         "code": ",".join(r.code_hashes)})
    return rows


COLUMNS = (("claim", "claim"), ("seed", "seed"), ("comparison", "comparison"), ("metric", "metric"),
           ("baseline", "baseline"), ("variant", "variant"), ("diff", "d [95% CI]"), ("p", "p"),
           ("p_adj", "p (Holm)"), ("p_tost", "p TOST (Holm)"), ("mde", "MDE 80%"), ("n", "seeds"),
           ("gate", "gate"), ("flags", "per-seed learned/ceiling"), ("code", "code"))


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
        "lr_sweep": {v: {f"{lr:g}": {"score": round(sc, 5), "seeds": n} for lr, (sc, n) in t.items()
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


# ---------------------------------------------------------------- HTML


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1f2328}table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa}.v-supported{color:#1a7f37;font-weight:600}.v-contradicted{color:#cf222e;font-weight:600}
.v-inconclusive{color:#9a6700;font-weight:600}.v-mixed{color:#8250df;font-weight:600}.v-no-verdict{color:#57606a;font-weight:600}
.v-uncalibrated{color:#8250df;font-weight:600}.v-out-of-scope{color:#0969da;font-weight:600}
.smoke{background:#fff8c5;border:1px solid #d4a72c;padding:0.6em}
blockquote{border-left:4px solid #d0d7de;margin:0.5em 0;padding:0.2em 1em;
color:#57606a}pre{background:#f6f8fa;padding:0.6em;overflow:auto;font-size:12px;max-height:22em}
img{max-width:100%;border:1px solid #eee;margin:4px}section{border-top:1px solid #d0d7de;margin-top:1.5em}
"""


def _calibration_html(cals: Sequence[Any]) -> list[str]:
    e = html.escape
    parts = [f"<h2>Calibrations</h2><p>{e(CALIBRATION_TEXT)}</p><table id='calibrations'><tr><th></th>"
             "<th>calibration</th><th>family</th><th>paper</th><th>ours</th><th>status</th></tr>"]
    for c in cals:
        cls = "v-supported" if c.reproduced else "v-contradicted"
        parts.append(f"<tr class='calibration-row'><td class='{cls}'>{e(c.mark)}</td><td>{e(c.spec.name)}</td>"
                     f"<td>{e(c.spec.family)}</td><td>{e(c.paper)}</td><td>{e(c.ours)}</td>"
                     f"<td class='{cls}'>{e(c.status)}<br><small>{e(c.detail)}</small></td></tr>")
    if not cals:
        parts.append("<tr><td colspan='6'>no calibration specs</td></tr>")
    parts.append("</table>")
    return parts


def _section_html(r: ExperimentResult, figs: list[tuple[str, bytes]]) -> list[str]:
    """One claim's section: verdict, protocol lines, reasons, quotes, comparisons, figures, what was run."""
    e, parts = html.escape, []
    s = r.spec
    parts.append(f"<section id='{e(s.name)}'><h2>{e(s.title)} <span class='{css_class(r.shown_verdict)}'>— "
                 f"{e(r.shown_verdict)}</span></h2>")
    if r.calibration:
        parts.append(f"<p class='v-uncalibrated'>Uncalibrated: {e(r.calibration)}.</p>")
    parts += [f"<p>{e(line)}</p>" for line in protocol_lines(r)]
    if s.task_reason:
        parts.append(f"<p><b>Why this task.</b> {e(s.task_reason)}</p>")
    if s.rule.reason:
        parts.append(f"<p><b>Why this minimum effect.</b> {e(s.rule.reason)}</p>")
    for q in s.quotes:
        parts.append(f"<blockquote>“{e(q.text)}” <br><small>— seed {e(q.seed)}</small></blockquote>")
    if s.notes:
        parts.append(f"<p>{e(s.notes)}</p>")
    for cr in r.comparisons:
        lab = r.comparison_label(cr)
        parts.append(f"<p>{e(cr.label)}: <span class='{css_class(lab)}'>{e(lab)}</span> "
                     f"({e(cr.verdict.reason)})</p>")
    for c in r.checks:
        parts.append(f"<p>{e(c['name'])}: seed says {e(_fmt(c.get('claimed')))}, cost model computes "
                     f"{e(_fmt(c.get('computed')))} → "
                     f"<span class='{css_class(c['verdict'])}'>{e(c['verdict'])}</span>"
                     f"{(' — ' + e(c['explain'])) if c.get('explain') else ''}</p>")
    for name, png in figs:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<img alt='{e(name)}' class='figure' src='data:image/png;base64,{b64}'>")
    parts.append("<details><summary>What was run</summary><pre>"
                 + e(yaml.safe_dump(_what_was_run(r), sort_keys=False, default_flow_style=None))
                 + "</pre><p>Base config:</p><pre>" + e(base_config(r)) + "</pre></details></section>")
    return parts


def render_html(results: Sequence[ExperimentResult], *, title: str = "archlab claims", command: str = "",
                figs: dict[str, list[tuple[str, bytes]]] | None = None, calibrations: Sequence[Any] | None = None,
                smoke: bool = False) -> str:
    """The whole report as one self-contained HTML string (calibrations first when given)."""
    e = html.escape
    figs = figs if figs is not None else {r.spec.name: figures(r) for r in results}
    records = [claim_record(r) for r in results]
    counts = head_counts(records)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style>"
             f"</head><body><h1>{e(title)}</h1>"]
    if smoke:
        parts.append(f"<p class='smoke'><b>{e(SMOKE)}.</b> {e(SMOKE_TEXT)}</p>")
    if command:
        parts.append(f"<p>Produced by <code>{e(command)}</code>.</p>")
    if calibrations is not None:
        parts += _calibration_html(calibrations)
    parts.append("<p id='counts'>Claims: " + ", ".join(f"<span class='{css_class(k)}'>{n} {e(k)}</span>" for k, n in
                                                       sorted(counts.items())) + e(registration_text(records)) + "</p>")
    parts.append(f"<p><b>Verdict rule.</b> {e(RULE_TEXT)}</p>")
    parts.append("<h2>Verdicts by claim</h2><table id='claims'><tr><th>claim</th><th>what</th><th>verdict</th>"
                 + "".join(f"<th>{e(h)}</th>" for _, h in SCALE_COLUMNS) + "</tr>")
    for c in records:
        name, v = c["claim"], c["verdict"]
        parts.append(f"<tr class='claim-row'><td><a href='#{e(name)}'>{e(name)}</a></td><td>{e(c['title'])}</td>"
                     f"<td class='{css_class(v)}'>{e(v)}</td>"
                     + "".join(f"<td>{e(cell(c, k))}</td>" for k, _ in SCALE_COLUMNS) + "</tr>")
    parts.append("</table><h2>Every comparison</h2><table id='verdicts'><tr>"
                 + "".join(f"<th>{e(h)}</th>" for _, h in COLUMNS) + "<th>verdict</th></tr>")
    for row in verdict_rows(results):
        cells = "".join(f"<td>{e(row[k])}</td>" for k, _ in COLUMNS)
        parts.append(f"<tr class='verdict-row'>{cells}<td class='{css_class(row['verdict'])}'>{e(row['verdict'])}"
                     "</td></tr>")
    parts.append("</table>")
    for r in results:
        parts += _section_html(r, figs.get(r.spec.name, []))
    parts.append("</body></html>")
    return "".join(parts)


# ---------------------------------------------------------------- Markdown


def calibration_table_markdown(cals: Sequence[Any]) -> str:
    """The calibration table (✔ reproduced / ✗ not, the paper's figure and ours) as Markdown."""
    lines = ["| | calibration | family | paper | ours | status |", "|---|---|---|---|---|---|"]
    for c in cals:
        cells = [c.mark, c.spec.name, c.spec.family, c.paper, c.ours, f"{c.status} ({c.detail})"]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return "\n".join(lines) if cals else "No calibration specs."


def render_markdown(results: Sequence[ExperimentResult], *, title: str = "archlab claims", command: str = "",
                    figure_dir: str = "figures", figs: dict[str, list[tuple[str, bytes]]] | None = None,
                    calibrations: Sequence[Any] | None = None, smoke: bool = False) -> str:
    """The report as Markdown; figures are linked from figure_dir."""
    figs = figs if figs is not None else {r.spec.name: figures(r) for r in results}
    lines = [f"# {title}", ""]
    if smoke:
        lines += [f"> **{SMOKE}.** {SMOKE_TEXT}", ""]
    if command:
        lines += [f"Produced by `{command}`.", ""]
    if calibrations is not None:
        lines += ["## Calibrations", "", CALIBRATION_TEXT, "", calibration_table_markdown(calibrations), ""]
    lines += [f"**Verdict rule.** {RULE_TEXT}", "", claims_table_markdown(results), "", verdict_table_markdown(results),
              ""]
    for r in results:
        s = r.spec
        lines += [f"## {s.title} — {r.shown_verdict}", ""]
        if r.calibration:
            lines += [f"*Uncalibrated: {r.calibration}.*", ""]
        lines += [x for line in protocol_lines(r) for x in (line, "")]
        if s.task_reason:
            lines += [f"**Why this task.** {s.task_reason}", ""]
        if s.rule.reason:
            lines += [f"**Why this minimum effect.** {s.rule.reason}", ""]
        for q in s.quotes:
            lines += [f"> “{q.text}” — seed {q.seed}", ""]
        if s.notes:
            lines += [s.notes, ""]
        for cr in r.comparisons:
            lines.append(f"- {cr.label}: **{r.comparison_label(cr)}** ({cr.verdict.reason})")
        for c in r.checks:
            lines.append(f"- {c['name']}: seed {_fmt(c.get('claimed'))}, computed {_fmt(c.get('computed'))} → "
                         f"**{c['verdict']}**" + (f" — {c['explain']}" if c.get("explain") else ""))
        lines.append("")
        for name, _ in figs.get(s.name, []):
            lines += [f"![{name}]({figure_dir}/{name}.png)", ""]
        lines += ["<details><summary>What was run</summary>", "", "```yaml",
                  yaml.safe_dump(_what_was_run(r), sort_keys=False, default_flow_style=None).rstrip(), "```", "",
                  "</details>", ""]
    return "\n".join(lines)


def claims_table_markdown(results: Sequence[ExperimentResult]) -> str:
    """One row per claim: verdict (at its scale), params, steps, tokens, the half-budget check, registration."""
    records = [claim_record(r) for r in results]
    lines = [f"Claims: {', '.join(f'{n} {k}' for k, n in sorted(head_counts(records).items()))}"
             f"{registration_text(records)}", "",
             "| claim | verdict | " + " | ".join(h for _, h in SCALE_COLUMNS) + " |", "|---|---|" + "---|" * 5]
    for c in records:
        cells = [c["claim"], f"**{c['verdict']}**"] + [cell(c, k) for k, _ in SCALE_COLUMNS]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines)


def protocol_lines(r: ExperimentResult) -> list[str]:
    """Registration status, the seed's unmet conditions and the half-budget check of one claim, as sentences."""
    out = [f"Registration: {r.registration}."] if r.registration else []
    out += [f"Outside the seed's stated conditions at the {r.profile} profile: {c.condition} — {c.why}."
            for c in r.unmet_scope]
    if r.budget_check:
        out.append(f"Half budget: {r.budget_check}" + (f" ({r.half_budget})." if r.half_budget and
                                                       r.budget_check.startswith("same") else "."))
    return out


def verdict_table_markdown(results: Sequence[ExperimentResult]) -> str:
    """The verdict table (one row per comparison) as Markdown."""
    head = "| " + " | ".join(h for _, h in COLUMNS) + " | verdict |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in verdict_rows(results):
        cells = [row[k] for k, _ in COLUMNS]
        cells.append(f"**{row['verdict']}**")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def write_report(results: Sequence[ExperimentResult], out_dir: str | Path, *, title: str = "archlab claims",
                 command: str = "", calibrations: Sequence[Any] | None = None, smoke: bool = False) -> dict[str, Path]:
    """Write report.html (self-contained), report.md, figures/*.png and verdicts.json under out_dir.
    `calibrations` (archlab.experiments.suite.claims.Calibration) are shown first; `smoke` labels a quick report."""
    out = Path(out_dir)
    figs = {r.spec.name: figures(r) for r in results}
    for items in figs.values():
        for name, png in items:
            atomic_write_bytes(out / "figures" / f"{name}.png", png)
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "verdicts.json"}
    kw = {"title": title, "command": command, "figs": figs, "calibrations": calibrations, "smoke": smoke}
    atomic_write_text(paths["html"], render_html(results, **kw))
    atomic_write_text(paths["md"], render_markdown(results, **kw))
    atomic_write_text(paths["json"], json.dumps({
        "command": command, "rule": RULE_TEXT, "smoke_test": smoke,
        "calibrations": [{"name": c.spec.name, "family": c.spec.family, "status": c.status, "paper": c.paper,
                          "ours": c.ours, "detail": c.detail} for c in calibrations or []],
        "claims": [claim_record(r) for r in results],
        "comparisons": verdict_rows(results)}, indent=2))
    return paths
