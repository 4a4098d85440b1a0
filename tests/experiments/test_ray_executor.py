"""Sweeps on Ray (a local Ray with 2 CPUs, started once for this module): the same verdicts and finals as the
local executor, a worker killed mid-run is retried, an interrupted driver resumes without redoing runs."""
import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from engine_util import plans_run

from archlab.cli import main
from archlab.config import ConfigError
from archlab.experiments.spec import resolve, spec_from_dict
from archlab.experiments.sweep.executors import RayExecutor
from archlab.experiments.sweep.store import Store

ray = pytest.importorskip("ray", reason="Ray is the optional 'ray' extra (the dev extra installs it)")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray instance for the module; RayExecutor joins it (and leaves it running) instead of starting one."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def tiny_real(out):
    """Two variants × two seeds of a 6-step trainer run on a 1-layer GPT (the same spec as test_claims_runner)."""
    spec = {
        "name": "tiny_ray", "seed": "000", "quote": "q", "runner": "trainer",
        "base": {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "ffn.d_ff": 32},
                 "task": {"name": "synthetic", "kind": "copy", "seq_len": 12, "vocab_size": 12, "eval_size": 32},
                 "train": {"batch_size": 4, "lr": 0.003, "eval_every": 0, "log_every": 2, "threads": 1}},
        "variants": {"base": {}, "no_pos": {"model.pos.kind": "none"}}, "seeds": [0, 1], "budget": {"steps": 6},
        "compare": [{"variant": "no_pos"}]}
    path = out / "tiny_ray.json"
    path.write_text(json.dumps(spec))
    return path


def finals(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT r.variant, r.seed, f.name, f.value FROM runs r JOIN finals f ON f.run_id = r.id "
                       "WHERE r.status = 'done' ORDER BY r.variant, r.seed, f.name").fetchall()
    con.close()
    return [r for r in rows if not r[2].endswith("_s") and "per_s" not in r[2]]  # timings differ


def test_ray_sweep_gives_the_local_verdicts_and_finals(local_ray, tmp_path, capsys):
    spec = tiny_real(tmp_path)
    tables = {}
    for ex in ("local", "ray"):
        # local: --jobs 0 runs execute_run in this process (the pool's path minus the spawn, ~10 s per run here;
        # test_claims_runner checks the pool against it)
        argv = ["experiment", str(spec), "--out", str(tmp_path / ex), "--executor", ex] + (
            ["--jobs", "0"] if ex == "local" else [])
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "ran 4, reused 0, already done 0, failed 0" in out, out
        tables[ex] = [line for line in out.splitlines() if line.startswith("tiny_ray ")]
    assert tables["ray"] == tables["local"] and len(tables["ray"]) == 1
    a, b = finals(tmp_path / "local" / "results.sqlite"), finals(tmp_path / "ray" / "results.sqlite")
    assert a == b and len(a) >= 8 and any(r[2] == "val_loss" for r in a)
    con = sqlite3.connect(tmp_path / "ray" / "results.sqlite")
    hosts = con.execute("SELECT DISTINCT host, attempts FROM runs").fetchall()
    assert hosts == [(os.uname().nodename, 1)]


def toy_plans(tmp_path, sleep=0.0, seeds=(0, 1), crash=None):
    toy = {"quality": 1.0, "noise": 0.01, "sleep": sleep}
    variants = {"base": {}, "worse": {"toy.quality": 1.5}}
    if crash:
        variants["crash"] = {"toy.crash_once": str(crash)}
        variants["bad"] = {"toy.quality": "not a number"}  # fails for its own reasons: recorded once
    spec = spec_from_dict({"name": "toy_ray", "seed": "000", "quote": "q", "runner": "toy", "base": {"toy": toy},
                           "variants": variants, "seeds": list(seeds), "budget": {"steps": 20},
                           "compare": [{"variant": "worse"}]})
    return resolve(spec, "quick")


def test_ray_worker_killed_mid_run_is_retried(local_ray, tmp_path):
    marker = tmp_path / "crashed"
    with Store(tmp_path / "c.sqlite") as st, RayExecutor() as ex:
        assert ex.capacity() == 2 and ex.resources("full", {}) == (1.0, 0.0)  # no GPU in this cluster
        with pytest.raises(ConfigError, match="--gpus-per-run 1: the Ray cluster has 0 GPUs"):
            RayExecutor(gpus_per_run=1).resources("quick", {})  # refused, not left pending for ever
        sweep = plans_run(toy_plans(tmp_path, seeds=(0,), crash=marker), st, out_dir=tmp_path, executor=ex,
                          log=None)
        assert marker.exists() and sweep.retried == 1 and sweep.ran == 3 and sweep.failed == 1
        rows = {r["variant"]: r for r in st.runs("toy_ray")}
        assert rows["crash"]["attempts"] == 2 and rows["crash"]["status"] == "done"
        assert rows["bad"]["attempts"] == 1 and "could not convert string to float" in rows["bad"]["error"]
        # the retried run's numbers are the numbers of the same run that never crashed (the base variant)
        assert st.finals(rows["crash"]["id"]) == st.finals(rows["base"]["id"])


def test_interrupted_ray_driver_resumes_without_redoing_runs(local_ray, tmp_path):
    db = tmp_path / "i.sqlite"
    plans = toy_plans(tmp_path, sleep=1.0, seeds=(0, 1))
    running = threading.Event()

    def ctrl_c_after_first_run():
        while running.is_set():
            time.sleep(0.1)
            con = sqlite3.connect(db, timeout=10)
            n = con.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
            con.close()
            if n >= 1 and running.is_set():
                os.kill(os.getpid(), signal.SIGINT)
                return

    with Store(db) as st:
        running.set()
        timer = threading.Thread(target=ctrl_c_after_first_run, daemon=True)
        timer.start()
        t0 = time.time()
        with RayExecutor() as ex, pytest.raises(KeyboardInterrupt):
            try:
                plans_run(plans, st, out_dir=tmp_path, executor=ex, log=None)
            finally:
                running.clear()
        timer.join()
        assert time.time() - t0 < 60
        status = [r["status"] for r in st.runs("toy_ray")]
        assert "running" not in status and 1 <= status.count("done") < 4
        done = {r["id"]: r["finished"] for r in st.runs("toy_ray", status="done")}
        with RayExecutor() as ex:
            sweep = plans_run(plans, st, out_dir=tmp_path, executor=ex, log=None)
        assert sweep.skipped == len(done) and sweep.ran == 4 - len(done)
        assert {r["id"]: r["finished"] for r in st.runs("toy_ray") if r["id"] in done} == done
        assert [r["status"] for r in st.runs("toy_ray")] == ["done"] * 4
