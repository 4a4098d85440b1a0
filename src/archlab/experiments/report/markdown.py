"""The Markdown twin of the HTML report: the same summary, tables (verdict first in every row, cost checks apart)
and per-claim sections, figures linked from a folder."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.judge.verdict import RULE_TEXT
from archlab.experiments.report.claim_rows import SCALE_COLUMNS, cell, claim_record, head_counts, registration_text
from archlab.experiments.report.content import (
    CALIBRATION_TEXT,
    CHECK_COLUMNS,
    COLUMNS,
    SMOKE,
    SMOKE_TEXT,
    _what_was_run,
    protocol_lines,
    summary_lines,
    verdict_rows,
)
from archlab.experiments.report.figures import figures
from archlab.experiments.report.fmt import sig


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(x).replace("|", "\\|").replace("\n", " ") for x in cells) + " |"


def calibration_table_markdown(cals: Sequence[Any]) -> str:
    """The calibration table (✔ reproduced / ✗ not, the paper's figure and ours) as Markdown."""
    lines = ["| | calibration | family | paper | ours | status |", "|---|---|---|---|---|---|"]
    for c in cals:
        lines.append(_row([c.mark, c.spec.name, c.spec.family, c.paper, c.ours, f"{c.status} ({c.detail})"]))
    return "\n".join(lines) if cals else "No calibration specs."


def claims_table_markdown(results: Sequence[ExperimentResult]) -> str:
    """One row per claim: verdict (at its scale), the claim, params, steps, tokens, the half-budget check,
    registration."""
    records = [claim_record(r) for r in results]
    lines = [f"Claims: {', '.join(f'{n} {k}' for k, n in sorted(head_counts(records).items()))}"
             f"{registration_text(records)}", "",
             "| verdict | claim | " + " | ".join(h for _, h in SCALE_COLUMNS) + " |",
             "|---|---|" + "---|" * len(SCALE_COLUMNS)]
    for c in records:
        lines.append(_row([f"**{c['verdict']}**", f"{c['title']} ({c['claim']})"]
                          + [cell(c, k) for k, _ in SCALE_COLUMNS]))
    return "\n".join(lines)


def verdict_table_markdown(results: Sequence[ExperimentResult]) -> str:
    """The comparisons (verdict first), then the cost checks in their own table, as Markdown."""
    rows = verdict_rows(results)
    comps = [r for r in rows if r["kind"] == "comparison"]
    checks = [r for r in rows if r["kind"] == "check"]
    out = []
    if comps:
        out += ["| verdict | " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
        out += [_row([f"**{r['verdict']}**"] + [r[k] for k, _ in COLUMNS]) for r in comps]
    if checks:
        out += ["", "Cost checks (computed by archlab.cost, no training):", "",
                "| verdict | " + " | ".join(h for _, h in CHECK_COLUMNS) + " |",
                "|" + "---|" * (len(CHECK_COLUMNS) + 1)]
        out += [_row([f"**{r['verdict']}**"] + [r[k] for k, _ in CHECK_COLUMNS]) for r in checks]
    return "\n".join(out)


def _section(r: ExperimentResult, figs: list[tuple[str, bytes]], figure_dir: str) -> list[str]:
    s = r.spec
    lines = [f"## {r.shown_verdict}: {s.title}", ""]
    if r.calibration:
        lines += [f"*Uncalibrated: {r.calibration}.*", ""]
    for q in s.quotes:
        lines += [f"> “{q.text}” — seed {q.seed}", ""]
    lines += [x for line in protocol_lines(r) for x in (line, "")]
    if s.task_reason:
        lines += [f"**Why this task.** {s.task_reason}", ""]
    if s.rule.reason:
        lines += [f"**Why this minimum effect.** {s.rule.reason}", ""]
    if s.notes:
        lines += [s.notes, ""]
    for cr in r.comparisons:
        lines.append(f"- {cr.label}: **{r.comparison_label(cr)}** ({cr.verdict.reason})")
    for c in r.checks:
        lines.append(f"- {c['name']}: seed {sig(c.get('claimed'))}, computed {sig(c.get('computed'))} → "
                     f"**{c['verdict']}**" + (f" — {c['explain']}" if c.get("explain") else ""))
    lines.append("")
    for name, _ in figs:
        lines += [f"![{name}]({figure_dir}/{name}.png)", ""]
    lines += ["<details><summary>What was run</summary>", "", "```yaml",
              yaml.safe_dump(_what_was_run(r), sort_keys=False, default_flow_style=None).rstrip(), "```", "",
              "</details>", ""]
    return lines


def render_markdown(results: Sequence[ExperimentResult], *, title: str = "archlab claims", command: str = "",
                    figure_dir: str = "figures", figs: dict[str, list[tuple[str, bytes]]] | None = None,
                    calibrations: Sequence[Any] | None = None, smoke: bool = False) -> str:
    """The report as Markdown; figures are linked from figure_dir."""
    figs = figs if figs is not None else {r.spec.name: figures(r) for r in results}
    lines = [f"# {title}", ""]
    if smoke:
        lines += [f"> **{SMOKE}.** {SMOKE_TEXT}", ""]
    lines += [f"- {x}" for x in summary_lines(results, command, calibrations)] + [""]
    if calibrations:
        lines += ["## Calibrations", "", CALIBRATION_TEXT, "", calibration_table_markdown(calibrations), ""]
    lines += [claims_table_markdown(results), "", verdict_table_markdown(results), "",
              f"**Verdict rule.** {RULE_TEXT}", ""]
    for r in results:
        lines += _section(r, figs.get(r.spec.name, []), figure_dir)
    return "\n".join(lines)
