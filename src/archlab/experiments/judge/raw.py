"""A sweep's raw data and its recomputation: every finished run's final metrics as CSV (`runs.csv`, one row per
run and metric, values written exactly), the decisions as JSON (`decisions.json`, full precision), and
`recompute`, which re-derives every verdict from the CSV alone — same lr choice, same tests, same Holm and
Benjamini–Hochberg — so that anyone can check the published verdicts without rerunning a single run."""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from archlab.config import ConfigError
from archlab.experiments.judge.analysis import judge_runs
from archlab.experiments.judge.multiplicity import apply_fdr
from archlab.experiments.judge.results import ExperimentResult
from archlab.experiments.spec import ExperimentSpec
from archlab.fileio import atomic_write_text

COLUMNS = ("experiment", "spec_hash", "profile", "variant", "seed", "lr", "role", "metric", "value")
DECISION_KEYS = ("verdict", "label", "n", "d", "p", "p_tost", "p_ni", "p_adj", "p_tost_adj", "p_ni_adj", "q")


def runs_csv(results: Iterable[ExperimentResult]) -> str:
    """Every finished run (every lr, selection and test seeds) of the training results, one row per final metric."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in results:
        if r.spec.kind == "cost":
            continue
        for variant, options in r.by_lr.items():
            for lr, runs in options.items():
                for run in sorted(runs, key=lambda x: (x.get("role", "test"), x["seed"])):
                    for metric, value in sorted(run["final"].items()):
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            w.writerow([r.spec.name, r.spec.spec_hash, r.profile, variant, run["seed"],
                                        "" if lr is None else repr(float(lr)), run.get("role", "test"), metric,
                                        repr(float(value))])
    return out.getvalue()


def decisions(results: Iterable[ExperimentResult]) -> list[dict[str, Any]]:
    """Each training claim's verdict and every comparison's deciding numbers, at full precision."""
    return [{"claim": r.spec.name, "verdict": r.verdict,
             "comparisons": [{"comparison": c.label, **{k: _plain(getattr(c.verdict, k)) for k in DECISION_KEYS}}
                             for c in r.comparisons]}
            for r in results if r.spec.kind != "cost"]


def write_raw(results: Sequence[ExperimentResult], out_dir: str | Path) -> dict[str, Path]:
    """runs.csv and decisions.json under out_dir (atomically)."""
    out = Path(out_dir)
    paths = {"csv": out / "runs.csv", "decisions": out / "decisions.json"}
    atomic_write_text(paths["csv"], runs_csv(results))
    atomic_write_text(paths["decisions"], json.dumps(decisions(results), indent=1, default=_json_float))
    return paths


def _plain(x: Any) -> Any:
    """A JSON-exact value: NaN as None (NaN is not equal to itself), numpy scalars as Python numbers."""
    if hasattr(x, "item"):
        x = x.item()
    return None if isinstance(x, float) and math.isnan(x) else x


def _json_float(x: Any) -> Any:
    return str(x)


def read_runs_csv(path: str | Path) -> dict[str, dict[str, Any]]:
    """experiment -> {spec_hash, profile, by_lr: variant -> lr -> [run records]} from a runs.csv."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--recompute {path}: cannot read it ({e.strerror or e})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(COLUMNS) - set(rows[0]):
        raise ConfigError(f"--recompute {path}: not a runs.csv of archlab claims (columns {', '.join(COLUMNS)})")
    out: dict[str, dict[str, Any]] = {}
    runs: dict[tuple, dict[str, Any]] = {}
    for i, row in enumerate(rows, start=2):
        try:
            lr = float(row["lr"]) if row["lr"] else None
            key = (row["experiment"], row["variant"], lr, int(row["seed"]), row["role"])
            value = float(row["value"])
        except ValueError:
            raise ConfigError(f"--recompute {path}: line {i} has a malformed number") from None
        exp = out.setdefault(row["experiment"], {"spec_hash": row["spec_hash"], "profile": row["profile"],
                                                 "by_lr": {}})
        if key not in runs:
            runs[key] = {"seed": key[3], "lr": lr, "role": key[4], "final": {}, "curve": []}
            exp["by_lr"].setdefault(key[1], {}).setdefault(lr, []).append(runs[key])
        runs[key]["final"][row["metric"]] = value
    return out


def recompute(path: str | Path, specs: Sequence[ExperimentSpec]) -> tuple[list[ExperimentResult], list[str]]:
    """Re-derive every verdict of a runs.csv with the given specs; also the notes (a spec whose hash differs from
    the one the runs were made with, an experiment with no spec)."""
    by_name = {s.name: s for s in specs}
    results, notes = [], []
    for name, exp in read_runs_csv(path).items():
        spec = by_name.get(name)
        if spec is None:
            notes.append(f"{name}: no such spec here; its runs are skipped")
            continue
        if spec.spec_hash != exp["spec_hash"]:
            notes.append(f"{name}: the spec changed since these runs (hash {exp['spec_hash']} → {spec.spec_hash})")
        by_lr = {v: exp["by_lr"].get(v, {}) for v in spec.variants}
        results.append(judge_runs(spec, exp["profile"], [], by_lr))
    apply_fdr(results)
    return results, notes


def compare_decisions(recomputed: list[dict[str, Any]], published: list[dict[str, Any]]) -> list[str]:
    """The differences between two decision lists (empty when they agree exactly)."""
    a = json.loads(json.dumps(recomputed, default=_json_float))
    b = {d["claim"]: d for d in published}
    diffs = [f"{d['claim']}: not in the published decisions" for d in a if d["claim"] not in b]
    diffs += [f"{d['claim']}: recomputed {d} ≠ published {b[d['claim']]}" for d in a
              if d["claim"] in b and d != b[d["claim"]]]
    return diffs
