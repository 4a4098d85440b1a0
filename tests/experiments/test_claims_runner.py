"""Runner and store: resume after an interruption gives the same results; runs are shared; spec errors are clear."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from engine_util import run_one

from archlab.config import ConfigError
from archlab.dotted import apply_diff
from archlab.experiments.runs.builtin import toy_run
from archlab.experiments.spec import load_spec, match_parameters, resolve, spec_from_dict
from archlab.experiments.sweep.store import Store


def toy_spec(name="toy", sleep=0.0, seeds=(0, 1, 2)):
    return spec_from_dict({
        "name": name, "seed": "000", "quote": "a toy claim", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01, "sleep": sleep}},
        "variants": {"base": {}, "worse": {"toy.quality": 1.5}, "same": {"toy.noise": 0.011}},
        "seeds": list(seeds), "budget": {"steps": 40}, "metric": "val_loss", "goal": "min",
        "compare": [{"variant": "worse", "expect": "worse"}, {"variant": "same", "expect": "worse"}],
        "rule": {"min_effect": 0.1},
    })


def finals(db, name):
    with Store(db) as st:
        rows = st.query("SELECT r.variant, r.seed, f.name, f.value FROM runs r JOIN finals f ON f.run_id = r.id "
                        "WHERE r.experiment = ? AND r.status = 'done' ORDER BY r.variant, r.seed, f.name", (name,))
    return [(r["variant"], r["seed"], r["name"], r["value"]) for r in rows]


def test_toy_sweep_verdicts_and_store(tmp_path):
    with Store(tmp_path / "a.sqlite") as st:
        res = run_one(toy_spec(seeds=range(8)), st, out_dir=tmp_path, inline=True, log=None)
        assert [c.verdict.verdict for c in res.comparisons] == ["supported", "contradicted"]
        assert res.verdict == "mixed"  # one supported, one contradicted
        assert len(st.runs("toy", status="done")) == 24
        run = st.runs("toy")[0]
        assert json.loads(run["config_json"])["train"]["steps"] == 40
        assert "torch" in json.loads(run["versions_json"]) and run["wall_time_s"] >= 0
        assert len(st.curve(run["id"])) > 3
        assert st.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == 2


def test_interrupted_sweep_resumes_to_the_same_results(tmp_path):
    # reference: one uninterrupted sweep
    with Store(tmp_path / "ref.sqlite") as st:
        run_one(toy_spec(), st, out_dir=tmp_path / "ref", inline=True, log=None)
    # interrupted after 4 of 9 runs, then resumed: finished runs are not redone
    with Store(tmp_path / "int.sqlite") as st:
        run_one(toy_spec(), st, out_dir=tmp_path / "int", inline=True, max_new_runs=4, log=None)
        assert len(st.runs("toy", status="done")) == 4
        first_ids = {r["id"]: r["finished"] for r in st.runs("toy", status="done")}
        res = run_one(toy_spec(), st, out_dir=tmp_path / "int", inline=True, log=None)
        assert res.sweep.ran == 5 and res.sweep.skipped == 4
        assert {r["id"]: r["finished"] for r in st.runs("toy") if r["id"] in first_ids} == first_ids
    assert finals(tmp_path / "int.sqlite", "toy") == finals(tmp_path / "ref.sqlite", "toy")


def test_killed_parallel_sweep_resumes(tmp_path):
    """Kill the whole process group of a 2-process sweep mid-way; resuming finishes with identical results."""
    db = tmp_path / "kill.sqlite"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_claims_runner import toy_spec
        from engine_util import run_one
        from archlab.experiments.sweep.store import Store
        if __name__ == "__main__":
            with Store({str(db)!r}) as st:
                run_one(toy_spec(sleep=0.6), st, out_dir={str(tmp_path / 'k')!r}, jobs=2, log=None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                done = con.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                continue
        if done >= 2 or proc.poll() is not None:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= done < 9, f"the sweep should have been killed mid-way (done={done})"
    with Store(db) as st:
        res = run_one(toy_spec(sleep=0.6), st, out_dir=tmp_path / "k", inline=True, log=None)
        assert res.sweep.skipped >= 2 and res.sweep.ran + res.sweep.skipped == 9
        assert len(st.runs("toy", status="done")) == 9
    with Store(tmp_path / "ref.sqlite") as st:
        run_one(toy_spec(sleep=0.0), st, out_dir=tmp_path / "ref", inline=True, log=None)
    # sleep changes the config (and so the run key) but not the numbers
    assert finals(db, "toy") == finals(tmp_path / "ref.sqlite", "toy")


def test_runs_are_shared_between_experiments(tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        run_one(toy_spec("one"), st, out_dir=tmp_path, inline=True, log=None)
        res = run_one(toy_spec("two"), st, out_dir=tmp_path, inline=True, log=None)
        assert res.sweep.reused == 9 and res.sweep.ran == 0
        assert finals(tmp_path / "s.sqlite", "one") == finals(tmp_path / "s.sqlite", "two")


def test_failed_run_is_recorded_and_retried(tmp_path):
    spec = toy_spec()
    with Store(tmp_path / "f.sqlite") as st:
        res = run_one(spec, st, out_dir=tmp_path, inline=True, log=None,
                             run_fn="archlab.experiments.runs.builtin:no_such_function")
        assert res.sweep.failed == 9 and "no_such_function" in st.runs("toy")[0]["error"]
        res = run_one(spec, st, out_dir=tmp_path, inline=True, log=None)
        assert res.sweep.ran == 9


def test_toy_run_is_deterministic(tmp_path):
    a = toy_run({"toy": {"quality": 1}}, 3, {"steps": 20}, str(tmp_path))
    b = toy_run({"toy": {"quality": 1}}, 3, {"steps": 20}, str(tmp_path))
    assert a == b


def test_apply_diff_and_param_matching():
    base = {"model": {"preset": "gpt-tiny", "ffn": {"d_ff": 256}}, "train": {"lr": 1e-3}}
    out = apply_diff(base, {"model.pos.kind": "none", "train": {"lr": 3e-3}})
    assert out["model"] == {"preset": "gpt-tiny", "ffn": {"d_ff": 256}, "pos": {"kind": "none"}}
    assert out["train"]["lr"] == 3e-3 and base["train"]["lr"] == 1e-3

    def count(cfg):  # a linear parameter count: 1000 + 130·d_ff
        return 1000 + 130 * cfg["model"]["ffn"]["d_ff"]

    cfg, n = match_parameters(base, 50_000, "model.ffn.d_ff", count, multiple_of=8)
    assert abs(n - 50_000) <= 130 * 8 and cfg["model"]["ffn"]["d_ff"] % 8 == 0


def test_equal_parameter_budget_with_real_models():
    spec = spec_from_dict({
        "name": "nffn", "seed": "000", "quote": "q", "runner": "teacher_forcing",
        "base": {"model": {"preset": "gpt-tiny", "d_model": 64}},
        "variants": {"base": {}, "no_ffn": {"model.ffn.enabled": False}},
        "compare": [{"variant": "no_ffn"}], "seeds": [0],
        "match_params": {"key": "model.d_model", "multiple_of": 4, "tolerance": 0.05},
    })
    from archlab.experiments.runs.builtin import count_model_params

    plans = resolve(spec, "quick", count_model_params)
    n = {p.variant: p.n_params for p in plans}
    assert abs(n["no_ffn"] - n["base"]) <= 0.05 * n["base"]
    assert plans[1].config["model"]["d_model"] > 64


def test_spec_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="quote"):
        spec_from_dict({"name": "x", "variants": {"a": {}}, "compare": [{"variant": "a"}]})
    with pytest.raises(ConfigError, match="not a variant"):
        spec_from_dict({"name": "x", "quote": "q", "variants": {"a": {}}, "compare": [{"variant": "b"}]})
    with pytest.raises(ConfigError, match="expect"):
        spec_from_dict({"name": "x", "quote": "q", "variants": {"a": {}, "b": {}},
                        "compare": [{"variant": "b", "expect": "sideways"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        spec_from_dict({"name": "x", "quote": "q", "variantz": {}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_spec(bad)


def tiny_real_spec():
    return spec_from_dict({
        "name": "tiny_real", "seed": "000", "quote": "q", "runner": "trainer",
        "base": {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "ffn.d_ff": 32},
                 "task": {"name": "synthetic", "kind": "copy", "seq_len": 12, "vocab_size": 12, "eval_size": 32},
                 "train": {"batch_size": 4, "lr": 0.003, "eval_every": 0, "log_every": 2, "threads": 1}},
        "variants": {"base": {}, "no_pos": {"model.pos.kind": "none"}}, "seeds": [0, 1], "budget": {"steps": 6},
        "compare": [{"variant": "no_pos"}]})


def test_real_trainer_sweep_interrupted_and_resumed_matches(tmp_path):
    with Store(tmp_path / "ref.sqlite") as st:
        ref = run_one(tiny_real_spec(), st, out_dir=tmp_path / "ref", inline=True, log=None)
        assert ref.sweep.ran == 4 and ref.sweep.failed == 0, ref.sweep.errors
    with Store(tmp_path / "int.sqlite") as st:
        run_one(tiny_real_spec(), st, out_dir=tmp_path / "int", inline=True, max_new_runs=1, log=None)
        res = run_one(tiny_real_spec(), st, out_dir=tmp_path / "int", inline=True, log=None)
        assert res.sweep.skipped == 1 and res.sweep.ran == 3
    a = [r for r in finals(tmp_path / "int.sqlite", "tiny_real") if not r[2].endswith("_s") and "per_s" not in r[2]]
    b = [r for r in finals(tmp_path / "ref.sqlite", "tiny_real") if not r[2].endswith("_s") and "per_s" not in r[2]]
    assert a == b and any(r[2] == "val_loss" for r in a)


def test_posthoc_evaluation_reloads_weights_into_the_changed_model(tmp_path):
    spec = spec_from_dict({
        "name": "tiny_posthoc", "seed": "000", "quote": "q", "runner": "trainer",
        "base": {"model": {"preset": "gpt-tiny", "d_model": 16, "n_layers": 1, "ffn.d_ff": 32},
                 "task": {"name": "synthetic", "kind": "copy", "seq_len": 12, "vocab_size": 12, "eval_size": 32},
                 "train": {"batch_size": 4, "lr": 0.003, "eval_every": 0, "log_every": 2, "threads": 1},
                 "posthoc": {"causal_eval": {"model.attn.causal": True}}},
        "variants": {"masked": {}, "unmasked": {"model.attn.causal": False}}, "seeds": [0], "budget": {"steps": 4},
        "compare": [{"variant": "unmasked", "metric": "causal_eval_loss"}]})
    with Store(tmp_path / "db.sqlite") as st:
        res = run_one(spec, st, out_dir=tmp_path / "out", inline=True, log=None)
        assert res.sweep.failed == 0, res.sweep.errors
    rows = {(r[0], r[2]): r[3] for r in finals(tmp_path / "db.sqlite", "tiny_posthoc")}
    # the masked model evaluated with the mask on is the same model: same loss; the unmasked one differs
    assert rows[("masked", "causal_eval_loss")] == pytest.approx(rows[("masked", "val_loss")], rel=1e-5)
    assert abs(rows[("unmasked", "causal_eval_loss")] - rows[("unmasked", "val_loss")]) > 1e-5


def test_a_baseline_that_did_not_learn_decides_nothing(tmp_path):
    raw = dict(toy_spec(seeds=range(8)).raw)
    # the toy baseline ends at val_loss ≈ 1.2: a threshold of 1.1 says "not learned", 1.5 says "learned"
    for at_most, expected in ((1.1, ["no verdict", "no verdict"]), (1.5, ["supported", "contradicted"])):
        spec = spec_from_dict({**raw, "name": f"toy_learned_{at_most}".replace(".", "_"),
                               "rule": {"min_effect": 0.1, "learned": {"metric": "val_loss", "at_most": at_most}}})
        with Store(tmp_path / "db.sqlite") as st:
            res = run_one(spec, st, out_dir=tmp_path / "out", inline=True, log=None)
        assert [c.verdict.verdict for c in res.comparisons] == expected
        if at_most == 1.1:  # the old `learned` form is a gate, checked per seed and per arm
            assert [c.verdict.label for c in res.comparisons] == ["no verdict: baseline did not learn",
                                                                  "no verdict: an arm did not learn"]
            assert res.comparisons[0].verdict.gates["baseline"]["learned"] == [False] * 8
    with pytest.raises(ConfigError, match="rule.learned"):
        spec_from_dict({**raw, "rule": {"learned": {"metric": "val_acc"}}})
