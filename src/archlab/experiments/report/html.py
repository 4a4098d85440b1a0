"""Reports: one self-contained HTML page (figures embedded as base64 PNG) and a Markdown twin (report.markdown).

In this order: the smoke-test banner (quick profile); a summary (claims and their verdicts, what ran, profile,
scale, calibrations); the calibrations of the families that ran (✔ reproduced / ✗ not, the paper's figure and
ours); one row per claim and one per comparison, the verdict and the claim first in each; the cost checks in their
own table (stated vs computed, relative error); the rule used to decide; then per claim its verdict and sentence,
the seed's words, the key figure (paired per-seed differences, their mean and 95 % interval, the ±m band), the
training and validation curves, the final metric per variant, the gate levels and per-seed flags, and what was run.
Numbers to three significant figures. Tables wrap (no sideways scrolling at 1280 px); below 760 px each row becomes
a card.
"""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.verdict import RULE_TEXT
from archlab.experiments.report.claim_rows import SCALE_COLUMNS, cell, claim_record
from archlab.experiments.report.content import (  # noqa: F401  (re-exported)
    CALIBRATION_TEXT,
    CHECK_COLUMNS,
    COLUMNS,
    DETAIL_COLUMNS,
    SMOKE,
    SMOKE_TEXT,
    _what_was_run,
    base_config,
    claim_summary,
    css_class,
    protocol_lines,
    shown_calibrations,
    summary_lines,
    verdict_rows,
)
from archlab.experiments.report.figures import (  # noqa: F401  (re-exported)
    curve_metric,
    figure_checks,
    figure_curves,
    figure_effects,
    figure_finals,
    figures,
)
from archlab.experiments.report.markdown import (  # noqa: F401  (re-exported)
    calibration_table_markdown,
    claims_table_markdown,
    render_markdown,
    verdict_table_markdown,
)
from archlab.fileio import atomic_write_bytes, atomic_write_text

E = html.escape

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:0 auto;padding:1em 1.2em;
color:#1f2328;line-height:1.45;overflow-wrap:anywhere}
h1{margin:.4em 0}h2{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0 1.2em;font-size:13px;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f6f8fa}td.verdict{min-width:7.5em}
.v-supported{color:#1a7f37;font-weight:600}.v-contradicted{color:#cf222e;font-weight:600}
.v-inconclusive{color:#9a6700;font-weight:600}.v-mixed{color:#8250df;font-weight:600}
.v-no-verdict{color:#57606a;font-weight:600}.v-uncalibrated{color:#8250df;font-weight:600}
.v-out-of-scope{color:#0969da;font-weight:600}
.smoke{background:#fff8c5;border:1px solid #d4a72c;padding:.6em}
.summary{background:#f6f8fa;border:1px solid #d0d7de;padding:.5em 1em .5em 2em}
.sub{color:#57606a;font-size:12px}
blockquote{border-left:4px solid #d0d7de;margin:.5em 0;padding:.2em 1em;color:#57606a}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:12px;max-height:22em;white-space:pre-wrap}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0;display:block}
section{border-top:1px solid #d0d7de;margin-top:1.5em}
@media (max-width:760px){
 table,thead,tbody,tr,th,td{display:block;width:100%}
 thead{display:none}
 tr{border:1px solid #d0d7de;margin:0 0 .8em}
 td{border:none;border-bottom:1px solid #eaeef2}
 td::before{content:attr(data-label);display:block;font-size:11px;color:#57606a;font-weight:600}
}
"""


def _table(table_id: str, heads: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A table whose cells carry their column name (data-label: the card layout on narrow screens); each row is
    (tr class, [cell HTML]); a cell HTML that starts with '<td' is used as it is."""
    out = [f"<table id='{table_id}'><thead><tr>" + "".join(f"<th>{E(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for cls, cells in rows:
        tds = [c.replace("<td", f"<td data-label='{E(h)}'", 1) if c.startswith("<td") else
               f"<td data-label='{E(h)}'>{c}</td>" for h, c in zip(heads, cells)]
        out.append(f"<tr class='{cls}'>" + "".join(tds) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _w(text: Any) -> str:
    """Escaped text that may wrap after an underscore (long claim and variant names)."""
    return E(str(text)).replace("_", "_<wbr>")


def _verdict_td(verdict: str) -> str:
    return f"<td class='verdict {css_class(verdict)}'>{E(verdict)}</td>"


def _summary_html(results: Sequence[ExperimentResult], command: str, cals: Sequence[Any] | None) -> str:
    items = []
    for line in summary_lines(results, "", cals):
        head, _, rest = line.partition(": ")
        items.append(f"<li><b>{E(head)}:</b> {E(rest)}</li>")
    if command:
        items.append(f"<li><b>Produced by:</b> <code>{E(command)}</code></li>")
    return "<h2>Summary</h2><ul class='summary' id='summary'>" + "".join(items) + "</ul>"


def _calibration_html(cals: Sequence[Any]) -> str:
    rows = []
    for c in cals:
        cls = "v-supported" if c.reproduced else "v-contradicted"
        rows.append(("calibration-row", [f"<td class='verdict {cls}'>{E(c.mark)} {E(c.status)}</td>",
                                         E(c.spec.name), E(c.spec.family), E(c.paper), E(c.ours),
                                         f"<span class='sub'>{E(c.detail)}</span>"]))
    return (f"<h2>Calibrations</h2><p>{E(CALIBRATION_TEXT)}</p>"
            + _table("calibrations", ["status", "calibration", "family", "paper", "ours", "detail"], rows))


def _claims_html(results: Sequence[ExperimentResult]) -> str:
    rows = []
    for r, c in zip(results, (claim_record(r) for r in results)):
        seeds = ", ".join(q.seed for q in r.spec.quotes)
        claim = (f"<b>{E(c['title'])}</b><br><span class='sub'><a href='#{E(c['claim'])}'>{_w(c['claim'])}</a>"
                 f" · seed {E(seeds)}</span>")
        rows.append(("claim-row", [_verdict_td(c["verdict"]), claim] + [E(cell(c, k)) for k, _ in SCALE_COLUMNS]))
    return "<h2>Verdicts by claim</h2>" + _table("claims", ["verdict", "claim"] + [h for _, h in SCALE_COLUMNS], rows)


def _comparisons_html(rows: Sequence[dict]) -> str:
    comps = [r for r in rows if r["kind"] == "comparison"]
    checks = [r for r in rows if r["kind"] == "check"]
    out = []
    if comps:
        out.append("<h2>Every comparison</h2>" + _table(
            "verdicts", ["verdict"] + [h for _, h in COLUMNS],
            [("verdict-row", [_verdict_td(r["verdict"])] + [_w(r[k]) for k, _ in COLUMNS]) for r in comps]))
    if checks:
        out.append("<h2>Cost checks</h2><p>The seed's figure against the cost model's (archlab.cost: no training; "
                   "supported when they agree within the claim's tolerance).</p>" + _table(
                       "checks", ["verdict"] + [h for _, h in CHECK_COLUMNS],
                       [("check-row", [_verdict_td(r["verdict"])] + [_w(r[k]) for k, _ in CHECK_COLUMNS])
                        for r in checks]))
    return "".join(out)


def _figure(name: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f"<img alt='{E(name)}' class='figure' src='data:image/png;base64,{b64}'>"


def _section_html(r: ExperimentResult, figs: list[tuple[str, bytes]], rows: Sequence[dict]) -> list[str]:
    """One claim: verdict and sentence, the seed's words, the key figure, the comparisons, the other figures, the
    protocol and the gate details, what was run."""
    s = r.spec
    parts = [f"<section id='{E(s.name)}'><h2><span class='{css_class(r.shown_verdict)}'>{E(r.shown_verdict)}"
             f"</span> — {E(s.title)}</h2>"]
    if r.calibration:
        parts.append(f"<p class='v-uncalibrated'>Uncalibrated: {E(r.calibration)}.</p>")
    parts += [f"<blockquote>“{E(q.text)}” <br><small>— seed {E(q.seed)}</small></blockquote>" for q in s.quotes]
    parts += [_figure(n, png) for n, png in figs[:1]]
    for cr in r.comparisons:
        lab = r.comparison_label(cr)
        parts.append(f"<p>{E(cr.label)}: <span class='{css_class(lab)}'>{E(lab)}</span> ({E(cr.verdict.reason)})</p>")
    for c in r.checks:
        parts.append(f"<p>{E(c['name'])}: <span class='{css_class(c['verdict'])}'>{E(c['verdict'])}</span>"
                     f"{(' — ' + E(c['explain'])) if c.get('explain') else ''}</p>")
    parts += [_figure(n, png) for n, png in figs[1:]]
    parts += [f"<p>{E(line)}</p>" for line in protocol_lines(r)]
    if s.task_reason:
        parts.append(f"<p><b>Why this task.</b> {E(s.task_reason)}</p>")
    if s.rule.reason:
        parts.append(f"<p><b>Why this minimum effect.</b> {E(s.rule.reason)}</p>")
    if s.notes:
        parts.append(f"<p>{E(s.notes)}</p>")
    mine = [x for x in rows if x["claim"] == s.name and x["kind"] == "comparison"]
    if mine:
        parts.append("<details><summary>Gates and per-seed flags</summary>" + _table(
            f"details-{E(s.name)}", [h for _, h in DETAIL_COLUMNS],
            [("detail-row", [_w(x[k]) for k, _ in DETAIL_COLUMNS]) for x in mine]) + "</details>")
    parts.append("<details><summary>What was run</summary><pre>"
                 + E(yaml.safe_dump(_what_was_run(r), sort_keys=False, default_flow_style=None))
                 + "</pre><p>Base config:</p><pre>" + E(base_config(r)) + "</pre></details></section>")
    return parts


def render_html(results: Sequence[ExperimentResult], *, title: str = "archlab claims", command: str = "",
                figs: dict[str, list[tuple[str, bytes]]] | None = None, calibrations: Sequence[Any] | None = None,
                smoke: bool = False) -> str:
    """The whole report as one self-contained HTML string: summary first, then calibrations and the tables."""
    figs = figs if figs is not None else {r.spec.name: figures(r) for r in results}
    rows = verdict_rows(results)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{E(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{E(title)}</h1>"]
    if smoke:
        parts.append(f"<p class='smoke'><b>{E(SMOKE)}.</b> {E(SMOKE_TEXT)}</p>")
    parts.append(_summary_html(results, command, calibrations))
    cals = shown_calibrations(results, calibrations)
    if cals or (calibrations is not None and not results):
        parts.append(_calibration_html(cals))
    if results:
        parts += [_claims_html(results), _comparisons_html(rows)]
    parts.append(f"<p><b>Verdict rule.</b> {E(RULE_TEXT)}</p>")
    for r in results:
        parts += _section_html(r, figs.get(r.spec.name, []), rows)
    parts.append("</body></html>")
    return "".join(parts)


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
