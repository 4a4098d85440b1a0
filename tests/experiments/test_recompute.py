"""Raw data and recomputation: a sweep writes runs.csv (every run's final metrics, exact) and decisions.json; `archlab
claims --recompute runs.csv` re-derives every verdict from the CSV alone — the lr picked on the selection seeds,
the exact tests, Holm and Benjamini–Hochberg — and finds them identical; a changed value is caught."""
import csv

import pytest
import yaml

from archlab.cli import main
from archlab.experiments.spec import schema

TOY = {"name": "toy_raw", "seed": "000", "quote": "a worse variant is worse", "runner": "toy",
       "base": {"toy": {"quality": 1.0, "noise": 0.02, "lr_optimum": 0.001}, "train": {"lr": 0.001}},
       "variants": {"base": {}, "worse": {"toy.quality": 1.3}, "same": {"toy.noise": 0.021}},
       "seeds": list(range(8)), "budget": {"steps": 20}, "metric": "val_loss", "goal": "min",
       "profiles": {"quick": {"lr_sweep": [0.0003, 0.001, 0.003], "lr_select_seeds": [100]}},
       "rule": {"min_effect": 0.05, "reason": "toy"},
       "compare": [{"variant": "worse", "expect": "worse"}, {"variant": "same", "expect": "same"}]}


@pytest.fixture
def sweep(tmp_path, monkeypatch, capsys):
    specs, cals = tmp_path / "specs", tmp_path / "cal"
    specs.mkdir()
    cals.mkdir()
    (specs / "01_toy_raw.yaml").write_text(yaml.safe_dump(TOY))
    (specs / "02_toy_raw2.yaml").write_text(yaml.safe_dump({**TOY, "name": "toy_raw2"}))
    monkeypatch.setattr(schema, "SPECS_DIR", specs)
    monkeypatch.setattr(schema, "CALIBRATION_DIR", cals)
    out = tmp_path / "out"
    assert main(["claims", "--jobs", "0", "--out", str(out), "--no-report"]) == 0
    capsys.readouterr()
    return out


def test_recompute_equals_the_published_decisions(sweep, capsys):
    rows = list(csv.DictReader((sweep / "runs.csv").open()))
    assert {r["role"] for r in rows} == {"select", "test"} and {r["experiment"] for r in rows} == {"toy_raw",
                                                                                                  "toy_raw2"}
    assert main(["claims", "--recompute", str(sweep / "runs.csv")]) == 0
    out = capsys.readouterr().out
    assert "2 verdict(s) recomputed: identical to" in out and "toy_raw " in out


def test_a_changed_value_is_caught(sweep, capsys):
    path = sweep / "runs.csv"
    rows = list(csv.reader(path.open()))
    i = next(i for i, r in enumerate(rows) if r[6] == "test" and r[3] == "worse" and r[7] == "val_loss")
    rows[i][8] = repr(float(rows[i][8]) - 0.5)  # one test run of the variant much better than it was
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    assert main(["claims", "--recompute", str(path)]) == 1
    assert "DIFFERS: toy_raw" in capsys.readouterr().out


def test_bad_files_are_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["claims", "--recompute", str(bad)]) == 2
    assert "not a runs.csv of archlab claims" in capsys.readouterr().err
    assert main(["claims", "--recompute", str(tmp_path / "none.csv")]) == 2


def test_a_calibration_sweep_writes_its_raw_data_and_recomputes(tmp_path, monkeypatch, capsys):
    """The calibrations decide which families count: their runs are raw data too (they were left out before)."""
    specs, cals = tmp_path / "specs", tmp_path / "cal"
    specs.mkdir()
    cals.mkdir()
    (cals / "toy_cal.yaml").write_text(yaml.safe_dump({**TOY, "name": "toy_cal", "reference": {"paper": "p"}}))
    monkeypatch.setattr(schema, "SPECS_DIR", specs)
    monkeypatch.setattr(schema, "CALIBRATION_DIR", cals)
    out = tmp_path / "out"
    assert main(["claims", "--calibrate", "--jobs", "0", "--out", str(out), "--no-report"]) == 0
    rows = list(csv.DictReader((out / "calibration" / "runs.csv").open()))
    assert {r["experiment"] for r in rows} == {"toy_cal"} and {r["role"] for r in rows} == {"select", "test"}
    capsys.readouterr()
    assert main(["claims", "--recompute", str(out / "calibration" / "runs.csv")]) == 0
    assert "1 verdict(s) recomputed: identical to" in capsys.readouterr().out


def test_the_committed_v2_calibration_data_recompute_to_the_committed_decisions(capsys):
    """The measured --standard calibration pass (benchmarks/results/claims_standard_v2/calibration): its raw data give
    its published decisions exactly, with today's built-in specs."""
    from pathlib import Path

    csv_path = Path(__file__).resolve().parents[2] / "benchmarks/results/claims_standard_v2/calibration/runs.csv"
    assert main(["claims", "--recompute", str(csv_path)]) == 0
    assert "5 verdict(s) recomputed: identical to" in capsys.readouterr().out


def test_the_committed_v2_claims_data_recompute_to_the_committed_decisions(capsys):
    """The measured v2 --standard claims pass (benchmarks/results/claims_standard_v2/claims): every verdict the docs
    quote is re-derived from its raw data alone, identically, with today's built-in specs and registration."""
    from pathlib import Path

    csv_path = Path(__file__).resolve().parents[2] / "benchmarks/results/claims_standard_v2/claims/runs.csv"
    assert main(["claims", "--recompute", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "47 verdict(s) recomputed: identical to" in out


@pytest.mark.parametrize("folder, n", [("supplement", 6), ("supplement/calibration", 4)])
def test_the_committed_v2_supplement_data_recompute_to_the_committed_decisions(folder, n, capsys):
    """The supplement to the v2 pass (the six claims registered after it started, with their families'
    calibrations, under newer code): each of its verdicts re-derived from its raw data, identically."""
    from pathlib import Path

    csv_path = Path(__file__).resolve().parents[2] / "benchmarks/results/claims_standard_v2" / folder / "runs.csv"
    assert main(["claims", "--recompute", str(csv_path)]) == 0
    assert f"{n} verdict(s) recomputed: identical to" in capsys.readouterr().out
