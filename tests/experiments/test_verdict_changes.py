"""The table of verdicts that changed between two sweeps, the 'not run' sentence of the verdict tables, and the
--previous / --verdicts command line on a copy of the docs."""
import json
import shutil
from pathlib import Path

import pytest

from archlab.config import ConfigError
from archlab.experiments.report import claims_table
from archlab.experiments.report.claim_rows import short_registration
from archlab.experiments.report.claims_table import not_run_text
from archlab.experiments.report.verdict_changes import (
    CHANGES_END,
    CHANGES_START,
    change_reason,
    changes_table,
    decision_head,
    evidence,
    verdict_changes,
)
from archlab.experiments.spec import builtin_specs

OLD = {"command": "v1", "claims": [
    {"claim": "no_ffn", "verdict": "supported"},
    {"claim": "single_head_mqar", "verdict": "contradicted"},
    {"claim": "mixers_recall", "verdict": "inconclusive"},
    {"claim": "parallelism", "verdict": "contradicted"},
    {"claim": "gone_claim", "verdict": "supported"}]}
NEW = {"command": "v2", "claims": [
    {"claim": "no_ffn", "verdict": "supported at 0.2M params, 0.8M tokens", "registration": "registered (2026-12-06)"},
    {"claim": "single_head_mqar", "verdict": "inconclusive at 0.1M params, 1500 steps"},
    {"claim": "mixers_recall", "verdict": "uncalibrated (supported at 0.1M params, 1500 steps)"},
    {"claim": "parallelism", "verdict": "out of scope at this scale (long sequences)",
     "unmet_scope": [{"condition": "long sequences", "why": "T = 64"}]},
    {"claim": "kv_cache_faster", "verdict": "supported", "registration": "amended after registration (x)"}]}


def test_only_claims_whose_head_changed_are_listed_with_the_reason_the_records_give():
    rows = {r["claim"]: r for r in verdict_changes(OLD, NEW)}
    assert "no_ffn" not in rows  # same head; the scale in the label is no change
    assert rows["single_head_mqar"]["why"] == "re-decided under the current procedure"
    assert rows["mixers_recall"]["why"].startswith("the family's calibration did not reproduce: decision supported")
    assert "long sequences" in rows["parallelism"]["why"]
    assert rows["kv_cache_faster"]["before"] == "—" and rows["kv_cache_faster"]["why"].startswith("new claim")
    assert rows["gone_claim"]["after"] == "—" and rows["gone_claim"]["why"] == "not in this sweep"
    assert list(rows) == ["single_head_mqar", "mixers_recall", "parallelism", "kv_cache_faster", "gone_claim"]


def test_the_changes_block_counts_transitions_and_escapes_cells():
    text = changes_table(OLD, NEW)
    first = text.splitlines()[0]
    assert first.startswith("Of 4 claims in both sweeps, **3 changed verdict**")
    assert "1 contradicted → inconclusive" in first and "1 inconclusive → uncalibrated" in first
    assert "1 new claim(s), 1 no longer run" in first
    assert len([ln for ln in text.splitlines() if ln.startswith("| ") and "claim | before" not in ln]) == 5
    assert change_reason(None, NEW["claims"][0]).startswith("new claim")
    assert decision_head("uncalibrated (contradicted: reversed at 1M params)") == "contradicted"
    assert decision_head("inconclusive (underpowered)") == "inconclusive"


def test_an_amended_or_budget_dependent_record_says_so():
    new = {"claim": "x", "verdict": "supported", "registration": "amended after registration (seeds, 2026-12-07: r)",
           "budget_check": "budget-dependent (at half budget: inconclusive)"}
    why = change_reason({"claim": "x", "verdict": "contradicted"}, new)
    assert "spec amended 2026-12-07 (seeds)" in why and "budget-dependent" in why


def test_a_registration_is_shortened_to_its_date_and_the_kinds_of_field_it_changed():
    long = ("amended after registration (procedure_version, profiles.full.seeds, profiles.standard.lr_select_seeds, "
            "runner, 2026-12-07: claims-rigor redesign, made after the v1 results had been seen (a, b))")
    assert short_registration(long) == "amended 2026-12-07 (procedure, seed plan, runner)"
    assert short_registration("registered (2026-12-07)") == "registered (2026-12-07)"
    two = long[:-1] + "; rule.outcome, rule.solved_at, 2026-12-08: judged on solved rates; see docs)"
    assert short_registration(two) == ("amended 2026-12-07 (procedure, seed plan, runner); "
                                       "2026-12-08 (rule.outcome, rule.solved_at)")
    assert short_registration("—") == "—"


def test_the_reason_shows_each_comparison_then_and_now_without_repeating_the_scope():
    old = {"claims": [{"claim": "c", "verdict": "contradicted"}], "comparisons": [
        {"claim": "c", "comparison": "a worse than b", "diff": "0.01 [0.004, 0.02]", "n": "3", "verdict": "supported"},
        {"claim": "c", "comparison": "dropped", "diff": "0.1 [0, 0.2]", "n": "3", "verdict": "inconclusive"}]}
    new = {"claims": [{"claim": "c", "verdict": "out of scope at this scale (deep: 4 layers)",
                       "unmet_scope": [{"condition": "deep", "why": "4 layers"}]}], "comparisons": [
        {"claim": "c", "comparison": "a worse than b", "diff": "0.008 [0.005, 0.011]", "n": "10",
         "verdict": "out of scope at this scale (deep: 4 layers)"},
        {"claim": "c", "comparison": "added", "diff": "0.2 [0.1, 0.3]", "n": "10",
         "verdict": "supported (outside the seed's stated conditions: deep)"},
        {"claim": "other", "comparison": "a worse than b", "diff": "9", "n": "10", "verdict": "supported"}]}
    assert evidence(old, new, "c") == (
        "a worse than b: before d 0.01 [0.004, 0.02], n 3 → supported; now d 0.008 [0.005, 0.011], n 10 → out of "
        "scope at this scale · added: not compared before; now d 0.2 [0.1, 0.3], n 10 → supported · dropped: before "
        "d 0.1 [0, 0.2], n 3 → inconclusive; not compared now")
    why = verdict_changes(old, new)[0]["why"]
    assert why.startswith("outside the seed's stated conditions (deep) — a worse than b: before")
    assert evidence(old, new, "absent") == ""
    assert decision_head("uncalibrated (inconclusive (underpowered))") == "inconclusive"


def test_a_table_names_the_registered_claims_a_sweep_did_not_run():
    specs = builtin_specs()
    report = {"claims": [{"claim": s.name} for s in specs[1:]]}
    assert not_run_text(report) == f" Not run in this sweep (1; registered, no verdict yet): `{specs[0].name}`."
    assert not_run_text({"claims": [{"claim": s.name} for s in specs]}) == ""


def test_previous_writes_the_changes_block_and_missing_files_are_refused(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    real = Path(claims_table.__file__).resolve().parents[4]
    shutil.copy(real / "README.md", root / "README.md")
    text = (real / "docs" / "claims.md").read_text(encoding="utf-8")
    if CHANGES_START not in text:
        text += f"\n{CHANGES_START}\n{CHANGES_END}\n"
    (root / "docs" / "claims.md").write_text(text, encoding="utf-8")
    fake = root / "src" / "archlab" / "experiments" / "report" / "claims_table.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(claims_table, "__file__", str(fake))
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(OLD), encoding="utf-8")
    new.write_text(json.dumps({**NEW, "comparisons": []}), encoding="utf-8")
    assert claims_table.main(["--verdicts", str(new), "--previous", str(old), "--write"]) == 0
    docs = (root / "docs" / "claims.md").read_text(encoding="utf-8")
    block = docs[docs.index(CHANGES_START):docs.index(CHANGES_END)]
    assert "**3 changed verdict**" in block and "| parallelism |" in block
    assert "Not run in this sweep" in (root / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="no verdicts file at"):
        claims_table.main(["--verdicts", str(tmp_path / "absent.json")])
    with pytest.raises(ConfigError, match="--previous needs at least one"):
        claims_table.main(["--verdicts", str(new), "--previous", "--write"])
