"""`train.compile: true` (the opt-in switch a spec profile sets with `overrides: {train.compile: true}`) trains to
the same numbers as eager within a stated tolerance: relative 1e-5 on every logged training loss and on the final
validation metrics of a 20-step tiny run (measured: ≤ 8e-8 on CPU, torch 2.13). Slow: the first compilation takes
minutes on a loaded 2-core machine."""
import copy

import pytest

from archlab.experiments.runs.builtin import trainer_run

RTOL = 1e-5
CFG = {"model": {"preset": "gpt-tiny", "d_model": 32, "n_layers": 1},
       "task": {"name": "synthetic", "kind": "mqar", "seq_len": 16, "vocab_size": 32, "n_pairs": 4, "eval_size": 64},
       "train": {"steps": 20, "batch_size": 8, "lr": 3e-3, "eval_every": 10, "log_every": 1, "threads": 1,
                 "checkpoint_every": 0}}


@pytest.mark.slow
def test_compiled_trainer_run_agrees_with_eager(tmp_path):
    runs = {}
    for compiled in (False, True):
        cfg = copy.deepcopy(CFG)
        cfg["train"]["compile"] = compiled
        runs[compiled] = trainer_run(cfg, 0, {"steps": 20}, str(tmp_path / str(compiled)))
    eager, comp = runs[False], runs[True]
    for k in ("val_loss", "val_acc", "train_loss"):
        assert comp["final"][k] == pytest.approx(eager["final"][k], rel=RTOL), k
    losses = [[p["train_loss"] for p in r["curve"] if "train_loss" in p] for r in (eager, comp)]
    assert len(losses[0]) == 20 and losses[1] == pytest.approx(losses[0], rel=RTOL)
