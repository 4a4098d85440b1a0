"""The persistent worker pool (`--executor local`'s default): a crash loses one worker and only its run, which the
driver retries; runs in a used worker give the same numbers as in a fresh process."""
from __future__ import annotations

import torch
from engine_util import plans_run
from test_sweep import toy_plans

from archlab.experiments.sweep.executor_base import Task
from archlab.experiments.sweep.executors import LocalExecutor, make_executor
from archlab.experiments.sweep.pool import PoolExecutor
from archlab.experiments.sweep.store import Store

TIMING = ("train_time_s", "tokens_per_s", "out_dir", "checkpoint")


def test_make_executor_local_is_the_pool_unless_fresh_process(monkeypatch):
    with make_executor("local", jobs=2) as ex:
        assert isinstance(ex, PoolExecutor)
    with make_executor("local", jobs=2, fresh_process=True) as ex:
        assert isinstance(ex, LocalExecutor)
    monkeypatch.setenv("ARCHLAB_FRESH_PROCESS", "1")
    with make_executor("local", jobs=1) as ex:
        assert isinstance(ex, LocalExecutor)


def test_pool_worker_killed_mid_run_is_retried_and_others_go_on(tmp_path):
    """Four runs on two workers; one run kills its worker (`crash_once`): that run is retried once and finishes,
    the other three finish in the workers that kept going, and every final equals an inline run's."""
    marker = tmp_path / "crashed"
    with Store(tmp_path / "c.sqlite") as st, PoolExecutor(2) as ex:
        sweep = plans_run(toy_plans(tmp_path, marker, seeds=(0, 1)), st, out_dir=tmp_path, executor=ex, log=None)
        assert marker.exists() and sweep.retried == 1 and sweep.ran == 4 and sweep.failed == 0
        assert ex.started == 3  # two workers, plus one in place of the worker that died
        rows = st.runs("toy_crash")
        assert sorted(r["attempts"] for r in rows) == [1, 1, 1, 2] and {r["status"] for r in rows} == {"done"}
        crashed = {(r["variant"], r["seed"]): st.finals(r["id"]) for r in rows}
    with Store(tmp_path / "ref.sqlite") as st:
        plans_run(toy_plans(tmp_path, seeds=(0, 1)), st, out_dir=tmp_path / "ref", inline=True, log=None)
        ref = {(r["variant"], r["seed"]): st.finals(r["id"]) for r in st.runs("toy_crash")}
    assert crashed == ref


def _tiny_trainer(steps: int = 6) -> dict:
    return {"model": {"preset": "gpt-tiny", "d_model": 32, "n_layers": 1},
            "task": {"name": "synthetic", "kind": "mqar", "seq_len": 16, "vocab_size": 32, "n_pairs": 4,
                     "eval_size": 64},
            "train": {"steps": steps, "batch_size": 8, "lr": 3e-3, "eval_every": 3, "log_every": 1, "threads": 1,
                      "checkpoint_every": 0}}


def _finals(ex, tasks: list[Task]) -> list[dict]:
    for t in tasks:
        ex.submit(t)
        while True:
            got = ex.poll(1.0)
            if got:
                break
        assert got[0].result["ok"], got[0].result.get("error")
        yield {k: v for k, v in got[0].result["result"]["final"].items() if k not in TIMING}


def test_trainer_run_in_a_used_worker_equals_a_fresh_process(tmp_path):
    """The same tiny trainer run, bit-identical final metrics: in a fresh process, and in a pool worker that has
    already run two other runs (another seed, another task) before it."""
    cfg = _tiny_trainer()
    run = Task(0, "trainer", cfg, 3, {"steps": 6}, str(tmp_path / "fresh"))
    with LocalExecutor(1) as ex:
        (fresh,) = list(_finals(ex, [run]))
    induction = _tiny_trainer()
    induction["task"] = {"name": "synthetic", "kind": "induction_heads", "seq_len": 16, "vocab_size": 32}
    others = [Task(1, "trainer", cfg, 4, {"steps": 6}, str(tmp_path / "a")),
              Task(2, "trainer", induction, 3, {"steps": 6}, str(tmp_path / "b"))]
    with PoolExecutor(1) as ex:
        *_, used = list(_finals(ex, [*others, Task(3, "trainer", cfg, 3, {"steps": 6}, str(tmp_path / "used"))]))
        assert ex.started == 1
    assert used == fresh and "val_acc" in used


def test_data_is_built_once_per_process_and_is_the_same_data():
    """What a pool worker keeps between runs — the decoded image set, a corpus's tokenizer — gives the very
    batches a fresh process builds (tasks built with the cache warm and cold are equal)."""
    from archlab.experiments.runs.builtin import make_run_config
    from archlab.tasks import _text, build_task, image_classification

    image = {"model": {"preset": "cnn-small"}, "train": {"batch_size": 8},
             "task": {"name": "image_classification", "dataset": "fashion_mnist_shipped", "val_size": 100}}
    text = {"model": {"preset": "char-gpt", "d_model": 32, "n_layers": 1}, "train": {"batch_size": 4},
            "task": {"name": "causal_lm", "corpus": "shakespeare", "tokenizer": "char", "block_size": 16}}
    for cfg in (image, text):
        image_classification._LOADED.clear()
        _text._BUILT.clear()
        cold = build_task(make_run_config(cfg, 1))
        warm = [build_task(make_run_config(cfg, s)) for s in (0, 1)][-1]
        assert len(image_classification._LOADED) + len(_text._BUILT) == 1
        for step in (0, 7):
            a, b = cold.train_batch(step), warm.train_batch(step)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        ea, eb = list(cold.eval_batches("val"))[0], list(warm.eval_batches("val"))[0]
        assert all(torch.equal(ea[k], eb[k]) for k in ea)
