"""`archlab claims` and `archlab experiment` are one engine: the same spec at the same profile gives the same
verdicts, the same report and the same options; neither says "calibrated" unless a calibration reproduced."""
import json
import re

import pytest
import yaml

from archlab.cli import main
from archlab.experiments.spec import schema

TOY = {"name": "toy_same", "seed": "000", "quote": "a worse variant is worse", "runner": "toy", "family": "toyfam",
       "base": {"toy": {"quality": 1.0, "noise": 0.01, "seed_effect": 0.05}},
       "variants": {"base": {}, "worse": {"toy.quality": 1.2}, "same": {"toy.quality": 1.0}},
       "seeds": list(range(8)), "budget": {"steps": 20}, "metric": "val_loss", "goal": "min",
       "rule": {"min_effect": 0.05, "reason": "toy"},
       "compare": [{"variant": "worse", "baseline": "base", "expect": "worse"},
                   {"variant": "same", "baseline": "base", "expect": "worse"}]}


@pytest.fixture
def toy_suite(tmp_path, monkeypatch):
    """A built-in suite of one toy spec (and no calibration), and the same spec as a user's file."""
    specs, cals = tmp_path / "specs", tmp_path / "cal"
    specs.mkdir()
    cals.mkdir()
    (specs / "01_toy_same.yaml").write_text(yaml.safe_dump(TOY))
    monkeypatch.setattr(schema, "SPECS_DIR", specs)
    monkeypatch.setattr(schema, "CALIBRATION_DIR", cals)
    return specs / "01_toy_same.yaml"


def _verdict_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("toy_same ")]


def _report_body(path) -> str:
    """report.md without its title and command lines (they name the command that made it) and with wall-clock
    times blanked (they differ between any two runs)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"[0-9.]+ s of run time", "T s of run time", text)
    text = re.sub(r"(wall|run time|time_s)[^|\n]*", r"\1 …", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("# ") and "Produced by" not in line)


def test_claims_and_experiment_give_identical_verdicts_and_reports(toy_suite, tmp_path, capsys):
    assert main(["claims", "--only", "toy_same", "--jobs", "0", "--out", str(tmp_path / "a")]) == 0
    out_claims = capsys.readouterr().out
    assert main(["experiment", str(toy_suite), "--jobs", "0", "--out", str(tmp_path / "b")]) == 0
    out_exp = capsys.readouterr().out
    lines = _verdict_lines(out_claims)
    assert lines and lines == _verdict_lines(out_exp)
    assert "worse worse than base: uncalibrated (supported" in lines[0]
    assert _report_body(tmp_path / "a" / "report.md") == _report_body(tmp_path / "b" / "report.md")
    va = json.loads((tmp_path / "a" / "verdicts.json").read_text())
    vb = json.loads((tmp_path / "b" / "verdicts.json").read_text())
    assert va["claims"] == vb["claims"]
    # no calibration covers the family: the verdict is shown uncalibrated, the report never says "calibrated"
    assert "uncalibrated (" in lines[0]
    assert not re.search(r"\bcalibrated\b(?! \()", (tmp_path / "b" / "report.md").read_text().replace(
        "uncalibrated", ""))


@pytest.mark.parametrize("command", ["claims", "experiment"])
def test_both_commands_take_the_same_run_options(toy_suite, tmp_path, capsys, command):
    """--steps (a smoke run under a new spec hash), --max-minutes, --no-report, --db and the executor flags work
    the same way in both commands; bad values are refused before any work with one line."""
    head = ["claims", "--only", "toy_same"] if command == "claims" else ["experiment", str(toy_suite)]
    out = tmp_path / command
    args = head + ["--jobs", "0", "--out", str(out), "--steps", "3", "--max-minutes", "5", "--no-report",
                   "--db", str(tmp_path / f"{command}.sqlite")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 steps per run: verdicts meaningless" in text and not (out / "report.md").exists()
    assert (tmp_path / f"{command}.sqlite").exists()
    assert main(head + ["--steps", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--steps must be ≥ 1, got 0")
    assert main(head + ["--max-minutes", "-1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--max-minutes must be > 0, got -1.0")


def test_experiment_refuses_adaptive_seeds_like_claims(toy_suite, tmp_path, capsys):
    """A profile's max_seeds (optional stopping) is refused by `archlab experiment` as by the suite, in one line."""
    spec = {**TOY, "name": "toy_adapt", "profiles": {"quick": {"max_seeds": 10}}}
    path = tmp_path / "adapt.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["experiment", str(path), "--jobs", "0", "--out", str(tmp_path / "o"), "--no-report"]) == 2
    assert "max_seeds (adaptive seeds) is no longer accepted" in capsys.readouterr().err
