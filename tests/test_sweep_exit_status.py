"""A sweep whose runs failed exits 1 after its summary (the raw data, and the report unless --no-report, still
written); one whose runs all finished exits 0."""
from __future__ import annotations

import yaml

from archlab.cli import main

SPEC = {"name": "toy_fail", "seed": "000", "quote": "a toy claim", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01}}, "variants": {"base": {}, "worse": {"toy.quality": 1.5}},
        "seeds": [0, 1], "budget": {"steps": 5}, "metric": "val_loss", "goal": "min",
        "compare": [{"variant": "worse", "expect": "worse"}], "rule": {"min_effect": 0.1}}


def _run(tmp_path, spec: dict) -> int:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return main(["experiment", str(path), "--jobs", "0", "--steps", "1", "--no-report", "--out", str(tmp_path / "out")])


def test_failed_runs_make_the_sweep_exit_1(tmp_path, capsys):
    spec = {**SPEC, "variants": {"base": {}, "worse": {"toy.quality": "not-a-number"}}}  # the toy run raises
    assert _run(tmp_path, spec) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED: ValueError: could not convert string to float") == 2
    assert out.rstrip().endswith("archlab experiment toy_fail: 2 run(s) failed (their errors are in the summary "
                                 "above); exit status 1")
    assert (tmp_path / "out" / "runs.csv").is_file()  # the summary's raw data is still written


def test_a_sweep_whose_runs_finished_exits_0(tmp_path, capsys):
    assert _run(tmp_path, SPEC) == 0
    assert "failed 0" in capsys.readouterr().out
