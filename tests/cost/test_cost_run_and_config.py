"""`archlab cost RUN_DIR` prices the model a run trained (the parameters training reported), and `archlab cost
CONFIG` applies the run config's task first (the tokenizer's vocabulary), as `archlab train` does."""
from __future__ import annotations

import json
import shutil

import pytest

from archlab.cli import main

TINY = ["--set", "train.steps=2", "--set", "train.eval_every=2", "--set", "train.eval_batches=1",
        "--set", "model.n_layers=1", "--quiet"]


def _params(capsys, *argv) -> int:
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["params"]


def test_cost_of_a_run_config_counts_the_tokenizer_vocabulary(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # by name, from a folder with no configs/
    assert _params(capsys, "shakespeare_char_llama") == 737_664  # 65-char preset vocab gives 734,464
    assert _params(capsys, "char-llama") == 734_464  # a preset alone: its own vocabulary


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "char"
    assert main(["train", "shakespeare_char_llama", "--out", str(out), *TINY]) == 0
    return out


def test_cost_of_a_run_dir_equals_what_training_reported(trained_run, capsys, tmp_path):
    reported = json.loads((trained_run / "final_metrics.json").read_text())["n_params"]
    assert _params(capsys, str(trained_run)) == reported == 193_152
    fresh = tmp_path / "not_started"  # a run folder with its config but no checkpoint yet
    fresh.mkdir()
    shutil.copy(trained_run / "run.yaml", fresh / "run.yaml")
    assert _params(capsys, str(fresh)) == reported


def test_cost_of_an_empty_folder_says_what_it_needs(tmp_path, capsys):
    assert main(["cost", str(tmp_path)]) == 2
    assert "no checkpoint and no run.yaml" in capsys.readouterr().err
