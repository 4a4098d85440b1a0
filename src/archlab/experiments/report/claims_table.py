"""The claim → task table of docs/claims.md, generated from the built-in specs (one row per claim), and the
verdict table of a finished sweep, generated from its verdicts.json.

`python -m archlab.experiments.report.claims_table` prints the claim → task table; `--write` replaces the text between
its markers in docs/claims.md. `--verdicts runs/claims/verdicts.json [MORE.json …] [--write]` does the same for the
verdict table (markers VERDICTS_START / VERDICTS_END) and the README's, from one sweep or several (e.g. a pass and a
later supplement of new claims; `merged_reports`); `--previous OLD.json [MORE.json …]` adds the table of verdicts
that changed since that sweep (`verdict_changes`). tests/experiments/test_claim_specs.py checks the page's claim →
task table equals `claims_table()`.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.judge.results import verdict_head
from archlab.experiments.report.claim_rows import cell, registration_text, short_registration
from archlab.experiments.report.fmt import md_cell
from archlab.experiments.report.verdict_changes import CHANGES_END, CHANGES_START, changes_table
from archlab.experiments.spec import ExperimentSpec, builtin_specs, variant_config
from archlab.experiments.spec.registration import load_registry, status_of

START, END = "<!-- claims-table:start (generated: python -m archlab.experiments.report.claims_table --write) -->", \
    "<!-- claims-table:end -->"
VERDICTS_START = ("<!-- verdicts-table:start (generated: python -m archlab.experiments.report.claims_table "
                  "--verdicts OUT/verdicts.json --write) -->")
VERDICTS_END = "<!-- verdicts-table:end -->"
README_START, README_END = "<!-- readme-verdicts:start (generated with the verdicts table) -->", \
    "<!-- readme-verdicts:end -->"
POOL_PAIRS = (("max", "relu"), ("max", "tanh"), ("max", "leaky_relu"), ("avg", "relu"), ("max", "gelu"))


def task_of(spec: ExperimentSpec, profile: str = "standard") -> str:
    """A short description of what a spec runs on at `profile` (the standard profile's verdicts are the ones the
    docs quote), read from its first variant's config and its runner."""
    if spec.kind == "cost":
        return "computation (archlab.cost)"
    cfg = variant_config(spec, next(iter(spec.variants)), profile) if spec.variants else spec.base
    task = cfg.get("task", {})
    model = cfg.get("model", {})
    if spec.runner == "step_throughput":
        return f"training-step throughput, T = {task.get('seq_len')}"
    if spec.runner == "decode_throughput":
        return f"greedy decoding throughput, {task.get('prompt_len')}-token prompt + {task.get('new_tokens')} new"
    if "kind" in task and "name" not in task:  # the teacher-forcing run functions pose their own task
        what = {"addition": f"{task.get('digits', 4)}-digit addition (LSB first)",
                "reversal": f"sequence reversal ({task.get('length', 12)} tokens)"}.get(task["kind"], task["kind"])
        return f"{what}, {model.get('n_layers', '?')}-layer decoder"
    if spec.runner == "teacher_forcing" or "length" in task:
        return f"sequence reversal ({task.get('length', 8)} tokens)"
    name = task.get("name", "?")
    if name == "causal_lm":
        return f"char-level {task.get('corpus', 'shakespeare').capitalize()}, {model.get('n_layers', '?')} layers, " \
               f"d {model.get('d_model', '?')}"
    if name == "synthetic":
        extra = {"mqar": f"P={task.get('n_pairs')}, T={task.get('seq_len')}",
                 "selective_copy": f"{task.get('n_tokens')} tokens, T={task.get('seq_len')}",
                 "kth_order": f"k={task.get('k', 3)}, T={task.get('seq_len')}",
                 "program_log": f"T={task.get('seq_len')}",
                 "induction_heads": f"T={task.get('seq_len')}"}.get(task.get("kind", ""), "")
        return f"{task.get('kind', 'mqar')} ({extra})" if extra else str(task.get("kind", "mqar"))
    if name == "image_classification":
        return str(task.get("dataset", "images")).replace("_", "-").title().replace("Mnist", "MNIST")
    return str(name)


def _seeds(spec: ExperimentSpec) -> str:
    """The seed documents a spec quotes, in order, each once."""
    return ", ".join(dict.fromkeys(q.seed for q in spec.quotes if q.seed))


def _metric(spec: ExperimentSpec) -> str:
    if spec.kind == "cost":
        return "MACs"
    metrics = []
    for c in spec.compare:
        m = f"{c.metric} ({c.goal})"
        if m not in metrics:
            metrics.append(m)
    r = spec.rule
    kind = {"solved": f"; solved rates, solved at {r.solved_at}",
            "time": f"; time to a level, censored at {r.censored_at}"}.get(r.outcome, "")
    return ", ".join(metrics) + kind


def _min_effect(spec: ExperimentSpec) -> str:
    if spec.kind == "cost":
        return "exact"
    m = spec.rule.min_effect
    return f"{m:g}" + (" (relative)" if spec.rule.relative else "")


def _gate(spec: ExperimentSpec) -> str:
    g = spec.rule.gate
    if g is None:
        return "—"
    metric = spec.rule.gate_metric or spec.metric
    fmt = lambda v: "—" if v is None else f"{v:g}"  # noqa: E731
    return f"{metric}: {fmt(g.chance)} / {fmt(g.plateau)}"


def claims_table(specs: Sequence[ExperimentSpec] | None = None, registry: Mapping[str, Any] | None = None) -> str:
    """The markdown table: claim, seed, task, metric (with its outcome kind when not continuous), min effect, gate
    levels, lr sweep, registration (of the spec as it is now, in the package's registration file, in short form:
    the reasons are in the registration sections), why this task."""
    specs = builtin_specs() if specs is None else specs
    registry = load_registry() if registry is None else registry
    rows = ["| claim | seed | task | metric | min effect | gate: chance / plateau | lr sweep | registration | "
            "why this task |", "|---|---|---|---|---|---|---|---|---|"]
    for s in specs:
        seeds = _seeds(s)
        lrs = ", ".join(f"{x:g}" for x in s.lr_sweep) or "—"
        rows.append(f"| {s.name} | {seeds} | {md_cell(task_of(s))} | {md_cell(_metric(s))} | {_min_effect(s)} | "
                    f"{_gate(s)} | {lrs} | {md_cell(short_registration(status_of(s, registry).text))} | "
                    f"{md_cell(s.task_reason)} |")
    return "\n".join(rows)


def pool_identity_table() -> str:
    """max |pool(act(x)) − act(pool(x))| for pooling/activation pairs (0: the two orders are the same function)."""
    from archlab.experiments.runs.claim_runs import pool_commute_gap

    rows = ["| pooling | activation | max \\|pool(act(x)) − act(pool(x))\\| | the two orders |", "|---|---|---|---|"]
    for pool, act in POOL_PAIRS:
        gap = pool_commute_gap(pool, act)
        rows.append(f"| {pool} | {act} | {gap:.3g} | {'identical (commute)' if gap == 0 else 'differ'} |")
    return "\n".join(rows)


def section_body() -> str:
    """The text between the claim → task table's markers in docs/claims.md."""
    return f"{claims_table()}\n\nPooling and activation order, computed (`claim_runs.pool_commute_gap`, 8 " \
           f"standard-normal 4×8×12×12 tensors, 2×2 windows):\n\n{pool_identity_table()}"


def section() -> str:
    """The claim → task block of docs/claims.md, markers included."""
    return f"{START}\n{section_body()}\n{END}"


def verdict_counts(claims: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many claims got each verdict (by its head: a label's scale and notes do not matter); decided = supported +
    contradicted + mixed (every one of a mixed claim's decided comparisons is supported or contradicted);
    'uncalibrated (x)' and 'out of scope at this scale (…)' count as not decided."""
    out = {"claims": len(claims), "supported": 0, "contradicted": 0, "mixed": 0, "inconclusive": 0,
           "no verdict": 0, "uncalibrated": 0, "out of scope": 0}
    for c in claims:
        out[verdict_head(str(c["verdict"]))] += 1
    out["decided"] = out["supported"] + out["contradicted"] + out["mixed"]
    return out


def counts_line(report: Mapping[str, Any]) -> str:
    """One line: the sweep's command and how many of its claims got each verdict."""
    n = verdict_counts(report["claims"])
    return (f"`{report.get('command', '')}`: **{n['decided']} of {n['claims']} claims decided** "
            f"({n['decided'] / max(1, n['claims']):.0%}: {n['supported']} supported, {n['contradicted']} "
            f"contradicted" + (f", {n['mixed']} mixed — some comparisons supported, some contradicted"
                               if n["mixed"] else "") + f"), {n['inconclusive']} inconclusive, "
            f"{n['no verdict']} no verdict" + (f", {n['uncalibrated']} uncalibrated" if n["uncalibrated"] else "")
            + (f", {n['out of scope']} out of scope at this scale" if n["out of scope"] else "")
            + registration_text(report["claims"]) + ".")


def verdicts_table(report: Mapping[str, Any]) -> str:
    """A finished sweep's verdicts (its verdicts.json): the counts, then one row per claim with its task and each
    comparison's arms (metric mean ± sd at the best lr), paired difference d [95% CI] and verdict."""
    specs = {s.name: s for s in builtin_specs()}
    lines = [counts_line(report) + not_run_text(report), "",
             "| claim | task | params | steps | tokens | verdict | comparisons: baseline → variant, "
             "d [95% CI] or solved rates → verdict |", "|---|---|---|---|---|---|---|"]
    rows: dict[str, list[str]] = {}
    for r in report.get("comparisons", []):
        if r.get("p") == "exact":  # a cost check: seed's figure vs computed
            rows.setdefault(r["claim"], []).append(f"{r['comparison']}: {r['baseline']}, {r['variant']} → "
                                                   f"{r['verdict']}")
        else:
            rows.setdefault(r["claim"], []).append(f"{r['comparison']}: {r['baseline']} → {r['variant']}, "
                                                   f"d {r['diff']} → {r['verdict']}")
    for c in report["claims"]:
        spec = specs.get(c["claim"])
        task = task_of(spec) if spec is not None else "?"
        lines.append(f"| {c['claim']} | {md_cell(task)} | {_scale_cells(c)} | **{md_cell(c['verdict'])}** | "
                     f"{md_cell('; '.join(rows.get(c['claim'], [])))} |")
    return "\n".join(lines)


def readme_table(report: Mapping[str, Any]) -> str:
    """The README's short form of a sweep's verdicts: the counts, then claim | seed | task | params | steps | tokens |
    verdict | registration (each as the sweep recorded it, the registration in its short form; '—' where its
    verdicts.json predates the field)."""
    specs = {s.name: s for s in builtin_specs()}
    lines = [counts_line(report) + not_run_text(report), "",
             "| claim | seed | task | params | steps | tokens | verdict | registration |",
             "|---|---|---|---|---|---|---|---|"]
    for c in report["claims"]:
        spec = specs.get(c["claim"])
        seeds, task = (_seeds(spec), md_cell(task_of(spec))) if spec is not None else ("?", "?")
        lines.append(f"| {c['claim']} | {seeds} | {task} | {_scale_cells(c)} | {md_cell(c['verdict'])} | "
                     f"{md_cell(short_registration(cell(c, 'registration')))} |")
    return "\n".join(lines)


def not_run_text(report: Mapping[str, Any], specs: Sequence[ExperimentSpec] | None = None) -> str:
    """' Not run in this sweep: a, b (registered, no verdict yet).' for the built-in claims the report lacks ('' when
    it has every one): a table never silently drops a registered claim."""
    have = {c["claim"] for c in report["claims"]}
    missing = [s.name for s in (builtin_specs() if specs is None else specs) if s.name not in have]
    if not missing:
        return ""
    return (f" Not run in this sweep ({len(missing)}; registered, no verdict yet): "
            + ", ".join(f"`{m}`" for m in missing) + ".")


def _scale_cells(record: Mapping[str, Any]) -> str:
    """'0.2M | 800 | 0.8M' — params, steps, tokens of a verdicts.json claim ('—' for a missing value)."""
    return " | ".join(cell(record, k) for k in ("params", "steps", "tokens"))


def merged_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several sweeps' verdicts.json as one table: the claims and comparisons of each in order, the commands joined
    with ' + '. A claim in two of them is refused (which would count?). Each sweep keeps its own multiplicity
    family (its BH q-values were computed over its own comparisons)."""
    if not reports:
        raise ConfigError("--verdicts needs at least one verdicts.json")
    seen: dict[str, int] = {}
    for i, r in enumerate(reports):
        for c in r["claims"]:
            if c["claim"] in seen:
                raise ConfigError(f"claim {c['claim']!r} is in verdicts files {seen[c['claim']] + 1} and {i + 1}; "
                                  "give each claim once")
            seen[c["claim"]] = i
    if len(reports) == 1:
        return dict(reports[0])
    return {**reports[0], "command": " + ".join(str(r.get("command", "")) for r in reports),
            "claims": [c for r in reports for c in r["claims"]],
            "comparisons": [c for r in reports for c in r.get("comparisons", [])]}


def replace_section(text: str, new: str, start: str = START, end: str = END) -> str:
    """`text` with the block from `start` to `end` replaced by `new` (which includes both markers)."""
    i, j = text.index(start), text.index(end) + len(end)
    return text[:i] + new + text[j:]


def _paths_after(argv: Sequence[str], flag: str) -> list[Path]:
    """The file arguments that follow `flag`, up to the next option."""
    out = []
    for a in argv[list(argv).index(flag) + 1:]:
        if a.startswith("--"):
            break
        out.append(Path(a))
    if not out:
        raise ConfigError(f"{flag} needs at least one verdicts.json")
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"no verdicts file at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path(__file__).resolve().parents[4]
    if "--verdicts" in argv:
        paths = _paths_after(argv, "--verdicts")
        report = merged_reports([_read_json(p) for p in paths])
        blocks = [(root / "docs" / "claims.md", VERDICTS_START, VERDICTS_END, verdicts_table(report)),
                  (root / "README.md", README_START, README_END, readme_table(report))]
        if "--previous" in argv:
            previous = merged_reports([_read_json(p) for p in _paths_after(argv, "--previous")])
            blocks.append((root / "docs" / "claims.md", CHANGES_START, CHANGES_END,
                           changes_table(previous, report)))
        what = f"the verdict table of {', '.join(map(str, paths))}"
    else:
        blocks, what = [(root / "docs" / "claims.md", START, END, section_body())], \
            "the claim → task table"
    for page, start, end, body in blocks:
        if "--write" in argv:
            text = page.read_text(encoding="utf-8")
            page.write_text(replace_section(text, f"{start}\n{body}\n{end}", start, end), encoding="utf-8")
            print(f"wrote {what} into {page}")
        else:
            print(f"{start}\n{body}\n{end}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
