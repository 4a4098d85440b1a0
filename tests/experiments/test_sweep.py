"""The sweep driver with local processes: Ctrl-C, lost workers, damaged databases, the Ray option without Ray."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from engine_util import plans_run, run_one

from archlab.cli import main
from archlab.config import ConfigError
from archlab.experiments.spec import resolve, spec_from_dict
from archlab.experiments.sweep.executors import LocalExecutor, make_executor
from archlab.experiments.sweep.store import Store

ARCHLAB = str(Path(sys.executable).with_name("archlab"))

TOY_YAML = """\
name: toy_sigint
seed: "000"
quote: a toy claim
runner: toy
base: {{toy: {{quality: 1.0, noise: 0.01, sleep: {sleep}}}}}
variants: {{base: {{}}, worse: {{toy.quality: 1.5}}}}
seeds: [0, 1]
budget: {{steps: 20}}
compare: [{{variant: worse, expect: worse}}]
"""


def statuses(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return dict(con.execute("SELECT id, status FROM runs").fetchall())
    finally:
        con.close()


def test_ctrl_c_records_finished_runs_and_marks_the_rest_interrupted(tmp_path):
    """SIGINT to the CLI's process group (what a terminal sends): it stops within seconds, nothing is left
    'running', the finished runs are stored, and the same command resumes without redoing them."""
    spec = tmp_path / "toy.yaml"
    spec.write_text(TOY_YAML.format(sleep=0.8))
    db = tmp_path / "out" / "results.sqlite"
    cmd = [ARCHLAB, "experiment", str(spec), "--out", str(tmp_path / "out"), "--jobs", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    done_before: set[int] = set()
    while time.time() < deadline and proc.poll() is None and not done_before:
        time.sleep(0.2)
        if db.exists():
            try:
                done_before = {i for i, s in statuses(db).items() if s == "done"}
            except sqlite3.OperationalError:
                continue
    assert done_before and proc.poll() is None, "the sweep should be interrupted mid-way"
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.time()
    out, err = proc.communicate(timeout=30)
    stop_s = time.time() - t0
    assert stop_s < 10, f"Ctrl-C took {stop_s:.1f}s"
    assert proc.returncode == 130, err
    assert "interrupted:" in out + err and "Traceback" not in err
    st = statuses(db)
    assert "running" not in st.values()
    assert done_before <= {i for i, s in st.items() if s == "done"}
    assert set(st.values()) <= {"done", "interrupted", "pending"} and len(st) == 4
    with Store(db) as store:
        finished = {r["id"]: r["finished"] for r in store.runs("toy_sigint", status="done")}
    # resuming (here in-process) runs only what was not done, and leaves the finished runs as they were
    with Store(db) as store:
        from archlab.experiments.spec import load_spec

        res = run_one(load_spec(spec), store, out_dir=tmp_path / "out", inline=True, log=None)
        assert res.sweep.skipped == len(finished) and res.sweep.ran == 4 - len(finished)
        assert {r["id"]: r["finished"] for r in store.runs("toy_sigint") if r["id"] in finished} == finished
        assert res.verdict == "no verdict"  # two seeds: the procedure needs six


def toy_plans(tmp_path, marker=None, seeds=(0,)):
    toy = {"quality": 1.0, "noise": 0.01}
    if marker:
        toy["crash_once"] = str(marker)
    spec = spec_from_dict({"name": "toy_crash", "seed": "000", "quote": "q", "runner": "toy", "base": {"toy": toy},
                           "variants": {"base": {}, "worse": {"toy.quality": 1.5}}, "seeds": list(seeds),
                           "budget": {"steps": 20}, "compare": [{"variant": "worse"}]})
    return resolve(spec, "quick")


def test_local_worker_killed_mid_run_is_retried(tmp_path):
    marker = tmp_path / "crashed"
    with Store(tmp_path / "c.sqlite") as st, LocalExecutor(2) as ex:
        sweep = plans_run(toy_plans(tmp_path, marker), st, out_dir=tmp_path, executor=ex, log=None)
        assert marker.exists() and sweep.retried == 1 and sweep.ran == 2 and sweep.failed == 0
        rows = st.runs("toy_crash")
        assert sorted(r["attempts"] for r in rows) == [1, 2] and {r["status"] for r in rows} == {"done"}
        crashed = {(r["variant"], r["seed"]): st.finals(r["id"]) for r in rows}
    with Store(tmp_path / "ref.sqlite") as st:  # the same runs without a crash: the same numbers
        plans_run(toy_plans(tmp_path), st, out_dir=tmp_path / "ref", inline=True, log=None)
        ref = {(r["variant"], r["seed"]): st.finals(r["id"]) for r in st.runs("toy_crash")}
    assert crashed == ref


def test_lost_worker_retries_are_bounded(tmp_path):
    """With max_retries=0 a run whose worker died is recorded failed (saying so), once; the sweep finishes."""
    with Store(tmp_path / "b.sqlite") as st, LocalExecutor(2) as ex:
        sweep = plans_run(toy_plans(tmp_path, tmp_path / "m"), st, out_dir=tmp_path, executor=ex, log=None,
                          max_retries=0)
        assert sweep.failed == 1 and sweep.ran == 1 and sweep.retried == 0
        failed = st.runs("toy_crash", status="failed")
        assert len(failed) == 1 and "worker process died (exit code 17)" in failed[0]["error"]
        assert failed[0]["attempts"] == 1


def test_damaged_database_is_named_and_never_overwritten(tmp_path, capsys):
    spec = tmp_path / "toy.yaml"
    spec.write_text(TOY_YAML.format(sleep=0))
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database\n" * 200)
    good = tmp_path / "good.sqlite"
    with Store(good) as st:
        st.put_experiment("x", "x", "h", {"a": "b" * 20000})
        for i in range(50):
            st.ensure_run(experiment="x", spec_hash="h", variant="v", seed=i, run_key=f"k{i}", profile="quick",
                          runner="toy", config={"pad": "p" * 2000}, budget={}, n_params=None)
    with sqlite3.connect(good) as con:  # fold the WAL into the file, then damage a page in the middle
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(good.read_bytes())
    data[len(data) // 2:len(data) // 2 + 3000] = os.urandom(3000)
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(bytes(data))
    for db in (garbage, damaged):
        before = db.read_bytes()
        for argv in (["experiment", str(spec), "--db", str(db), "--out", str(tmp_path / "o"), "--jobs", "0"],
                     ["claims", "--only", "cost", "--db", str(db), "--out", str(tmp_path / "c")]):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and str(db) in err[0] and "left untouched" in err[0], err
            assert err[0].startswith(f"archlab {argv[0]}: error: results database")
        assert db.read_bytes() == before
        assert not Path(f"{db}-wal").exists()
    with pytest.raises(ConfigError, match="is a directory"):
        Store(tmp_path)


def test_ray_option_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "toy.yaml"
    spec.write_text(TOY_YAML.format(sleep=0))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    assert main(["experiment", str(spec), "--out", str(tmp_path / "o"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'archlab[ray]'" in err[0], err
    with pytest.raises(ConfigError, match="need --executor ray"):
        make_executor("local", ray_address="auto")


def test_executor_module_imports_no_ray():
    code = textwrap.dedent("""
        import sys
        import archlab.cli, archlab.experiments.sweep.driver, archlab.experiments.runs.builtin, archlab.commands.claims
        assert "ray" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unreachable_ray_address_is_one_line_not_minutes_of_retries():
    import socket

    from archlab.experiments.sweep.executors import check_reachable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    with pytest.raises(ConfigError, match=f"--ray-address 127.0.0.1:{port}: no Ray head answers there"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.time() - t0 < 6
    check_reachable(None)  # a local Ray (or 'auto', 'ray://…') is left to Ray
    check_reachable("auto")


def test_progress_bar_shows_done_running_failed_left():
    import io

    from archlab.experiments.sweep.driver import Progress

    buf = io.StringIO()
    bar = Progress(4, print, True, file=buf)
    bar.update(done=0, running=2, failed=0, remaining=2)
    bar.update(done=1, running=1, failed=1, remaining=0, finished=2)
    bar.close()
    text = buf.getvalue()
    assert "done 0 · running 2 · failed 0 · left 2" in text and "2/4" in text
    assert "done 1 · running 1 · failed 1 · left 0" in text
    assert Progress(4, None, True).bar is None  # quiet sweeps (log=None) draw nothing


def test_run_lines_count_and_pace_when_no_bar_is_drawn(tmp_path):
    """Output to a file or pipe gets no bar: each run line says k/N and the time left at the pace so far."""
    lines: list[str] = []
    with Store(tmp_path / "r.sqlite") as st:
        # progress on, as on the command line: stderr is not a terminal here, so tqdm draws nothing
        plans_run(toy_plans(tmp_path, seeds=(0, 1)), st, out_dir=tmp_path, inline=True, log=lines.append,
                  progress=True)
    runs = [x for x in lines if x.startswith("  [toy_crash]")]
    assert len(runs) == 4
    assert [r.rsplit(" [", 1)[1].split(",")[0].rstrip("]") for r in runs] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("min left]" in r for r in runs[:3]) and runs[3].endswith(" [4/4]")
