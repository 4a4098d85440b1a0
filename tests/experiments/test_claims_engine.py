"""The claims engine end to end on toy runs: the paired, gated rule, lr sweeps, the code hash, calibration, profiles."""
import json
import math

import pytest
import yaml
from engine_util import run_all, run_one

from archlab.cli import main
from archlab.config import ConfigError
from archlab.experiments.report.html import SMOKE, render_html, render_markdown
from archlab.experiments.spec import code_files, load_spec, resolve, spec_from_dict
from archlab.experiments.spec import identity as identity_mod
from archlab.experiments.spec import schema as spec_mod
from archlab.experiments.spec.identity import compute_code_hash
from archlab.experiments.suite.calibration import apply_calibrations, calibrations
from archlab.experiments.sweep.store import Store


def toy(name="toy", rule=None, seeds=tuple(range(8)), family="", **extra):
    # the toy's val_loss ends near quality + 0.2; `worse` is 0.5 higher, `same` equal within noise
    return spec_from_dict({
        "name": name, "seed": "000", "quote": f"the {name} claim", "runner": "toy", "family": family,
        "base": {"toy": {"quality": 1.0, "noise": 0.01}},
        "variants": {"base": {}, "worse": {"toy.quality": 1.5}, "same": {"toy.noise": 0.011}},
        "seeds": list(seeds), "budget": {"steps": 40}, "metric": "val_loss", "goal": "min",
        "compare": [{"variant": "worse", "expect": "worse"}, {"variant": "same", "expect": "worse"}],
        "rule": rule or {"min_effect": 0.1}, **extra})


def run(spec, tmp_path, db="db.sqlite"):
    with Store(tmp_path / db) as st:
        return run_one(spec, st, out_dir=tmp_path / "out", inline=True, log=None)


def labels(res):
    return [c.verdict.label for c in res.comparisons]


def test_rule_end_to_end_supported_no_effect_and_holm(tmp_path):
    res = run(toy(rule={"min_effect": 0.1, "gate": {"chance": 3.0}, "reason": "toy"}), tmp_path)
    assert labels(res) == ["supported", "contradicted: no effect"]
    worse, same = (c.verdict for c in res.comparisons)
    assert worse.n == 8 and worse.d == pytest.approx(0.5, abs=0.05) and worse.ci_lo > 0.4
    # Holm over the claim's two comparisons: the smaller p is doubled
    assert worse.p_adj == pytest.approx(min(1.0, 2 * worse.p)) and same.p_tost_adj == pytest.approx(2 * same.p_tost)
    assert worse.gates["baseline"]["learned"] == [True] * 8 and not math.isnan(worse.mde)


def test_ceiling_and_chance_give_no_verdict(tmp_path):
    # every arm past the ceiling (goal min: loss <= 2): "no effect" cannot be concluded
    res = run(toy("toy_ceiling", rule={"min_effect": 0.1, "gate": {"chance": 3.0, "ceiling": 2.0}}), tmp_path)
    assert labels(res)[1] == "no verdict: both arms at ceiling"
    # the baseline never gets past chance (loss <= 1.1 needed, it ends near 1.2): nothing is decided
    res = run(toy("toy_chance", rule={"min_effect": 0.1, "gate": {"chance": 1.1}}), tmp_path)
    assert labels(res) == ["no verdict: baseline did not learn", "no verdict: an arm did not learn"]
    assert res.verdict == "no verdict"
    # the plateau counts as well as chance, and the margin is added to the worse of the two
    res = run(toy("toy_plateau", rule={"min_effect": 0.1, "gate": {"chance": 3.0, "plateau": 1.3, "margin": 0.2}}),
              tmp_path)
    assert res.comparisons[0].verdict.gates["baseline"]["level"] == pytest.approx(1.1)
    assert labels(res)[0] == "no verdict: baseline did not learn"


def test_pairing_by_seed_removes_a_shared_seed_effect(tmp_path):
    # a seed effect of sd 0.5 shared by both arms swamps a 0.1 difference between seed means, not the pairs
    spec = toy("toy_paired", rule={"min_effect": 0.05})
    spec = spec_from_dict({**spec.raw, "base": {"toy": {"quality": 1.0, "noise": 0.01, "seed_effect": 0.5}},
                           "variants": {"base": {}, "worse": {"toy.quality": 1.1}},
                           "compare": [{"variant": "worse", "expect": "worse"}]})
    res = run(spec, tmp_path)
    v = res.comparisons[0].verdict
    assert v.label == "supported" and v.sd < 0.05
    assert res.comparisons[0].baseline.std > 0.2  # unpaired, the spread would hide the effect


def test_noise_is_inconclusive_and_underpowered(tmp_path):
    spec = toy("toy_noise", rule={"min_effect": 0.05})
    spec = spec_from_dict({**spec.raw, "base": {"toy": {"quality": 1.0, "noise": 0.3}},
                           "variants": {"base": {}, "worse": {"toy.quality": 1.01}},
                           "compare": [{"variant": "worse", "expect": "worse"}]})
    v = run(spec, tmp_path).comparisons[0].verdict
    assert v.verdict == "inconclusive" and v.underpowered and v.mde > 0.05


def test_lr_sweep_judges_each_variant_at_its_best_lr(tmp_path):
    spec = spec_from_dict({
        "name": "toy_lr", "seed": "000", "quote": "q", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01, "lr_optimum": 0.001}, "train": {"lr": 0.001}},
        "variants": {"base": {}, "other": {"toy.lr_optimum": 0.01, "toy.quality": 1.02}},
        "seeds": [0, 1, 2, 3, 4, 5], "budget": {"steps": 20}, "lr_sweep": [0.001, 0.01],
        "profiles": {"quick": {"lr_sweep": [0.001, 0.003, 0.01]}},
        "compare": [{"variant": "other", "expect": "worse"}], "rule": {"min_effect": 0.1}})
    plans = resolve(spec, "standard")
    assert len(plans) == 2 * 2 * 6 and {p.lr for p in plans} == {0.001, 0.01}
    assert {p.config["train"]["lr"] for p in plans} == {0.001, 0.01} and len({p.run_key for p in plans}) == 24
    res = run(spec, tmp_path)  # quick: its own three-point sweep
    assert len(res.plans) == 2 * 3 * 6
    assert res.best_lr == {"base": 0.001, "other": 0.01}
    assert all(r["lr"] == 0.01 for r in res.runs["other"]) and len(res.runs["other"]) == 6
    # at its own best lr the variant is only 0.02 worse: no 0.1 effect (at the baseline's lr it would be 0.12)
    assert labels(res) == ["contradicted: no effect"]
    assert set(res.lr_table["other"]) == {0.001, 0.003, 0.01}


def lr2_spec(grid=(0.0003, 0.001, 0.003, 0.01, 0.03), optimum=0.001, **profile):
    return spec_from_dict({
        "name": "toy_lr2", "seed": "000", "quote": "q", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01, "lr_optimum": optimum}, "train": {"lr": 0.001}},
        "variants": {"base": {}, "other": {"toy.lr_optimum": 0.01, "toy.quality": 1.02}},
        "seeds": list(range(8)), "budget": {"steps": 20},
        "profiles": {"quick": {"lr_sweep": list(grid), "lr_select_seeds": [100], **profile}},
        "compare": [{"variant": "other", "expect": "worse"}], "rule": {"min_effect": 0.1}})


def test_two_phase_lr_sweep_picks_on_selection_seeds_then_runs_the_test_seeds_at_the_best_lr(tmp_path):
    spec = lr2_spec()
    phase_1 = resolve(spec, "quick")
    assert sorted((p.variant, p.lr, p.seed, p.role) for p in phase_1) == sorted(
        (v, lr, 100, "select") for v in ("base", "other") for lr in (0.0003, 0.001, 0.003, 0.01, 0.03))
    res = run(spec, tmp_path)
    # 10 sweep runs on seed 100, then the 8 test seeds at each variant's best lr: 26 runs, not 80
    assert len(res.plans) == 26 and res.sweep.ran == 26
    assert res.best_lr == {"base": 0.001, "other": 0.01}
    # the verdict rests on the test seeds only: the seed that picked the lr is not part of the test
    assert [r["seed"] for r in res.runs["other"]] == list(range(8)) and {r["lr"] for r in res.runs["other"]} \
        == {0.01}
    assert labels(res) == ["contradicted: no effect"]
    # the suite runs phase 2 as a follow-up pass, and a second invocation resumes with nothing to do
    with Store(tmp_path / "suite.sqlite") as st:
        [r] = run_all([spec], st, out_dir=tmp_path / "o2", inline=True, log=None)
        assert r.sweep.ran == 26 and r.best_lr == res.best_lr and labels(r) == labels(res)
        [again] = run_all([spec], st, out_dir=tmp_path / "o2", inline=True, log=None)
        assert again.sweep.ran == 0 and again.sweep.skipped == 26
    with pytest.raises(ConfigError, match="shares seeds \\[0\\] with the test seeds"):
        spec_from_dict({**spec.raw, "profiles": {"quick": {"lr_sweep": [0.001, 0.01], "lr_select_seeds": [0]}}})
    with pytest.raises(ConfigError, match="lr_sweep_seeds"):
        spec_from_dict({**spec.raw, "profiles": {"quick": {"lr_sweep_seeds": 0}}})


def test_a_best_lr_on_the_edge_of_the_grid_grows_the_grid(tmp_path):
    """The baseline's optimum (1e-4) lies below the grid [1e-3, 3e-3, 1e-2] and the variant's (1e-2) on its top
    edge: the grid grows past an edge (× or ÷ 3.33, the grid's own outer spacing) at most twice per edge, on the
    selection seed only, before the test seeds run."""
    res = run(lr2_spec(grid=(0.001, 0.003, 0.01), optimum=0.0001), tmp_path)
    assert set(res.lr_table["base"]) == {0.000111111, 0.000333333, 0.001, 0.003, 0.01, 0.0333333}
    assert res.best_lr["base"] == 0.000111111 and res.best_lr["other"] == 0.01
    assert {r["seed"] for r in res.runs["base"]} == set(range(8))
    assert sorted({p.seed for p in res.plans if p.lr not in (res.best_lr["base"], res.best_lr["other"])}) == [100]


def test_a_code_change_invalidates_cached_runs(tmp_path, monkeypatch):
    spec = toy("toy_code", seeds=(0, 1))
    first = run(spec, tmp_path)
    assert first.sweep.ran == 6 and run(spec, tmp_path).sweep.skipped == 6  # same code: reused
    monkeypatch.setenv(identity_mod.CODE_HASH_ENV, "changed-code")
    identity_mod.code_hash.cache_clear()
    try:
        again = run(spec, tmp_path)
        assert again.sweep.ran == 6 and again.sweep.skipped == 0 and again.sweep.reused == 0
        assert again.code_hashes == ["changed-code"] and first.code_hashes != ["changed-code"]
        with Store(tmp_path / "db.sqlite") as st:
            assert {r["code_hash"] for r in st.runs("toy_code")} == {first.code_hashes[0], "changed-code"}
        assert "changed-code" in render_markdown([again])
    finally:
        identity_mod.code_hash.cache_clear()


def test_code_hash_follows_the_source_a_run_executes(tmp_path):
    root = tmp_path / "archlab"
    for rel in ("models/m.py", "commands/c.py", "experiments/report/html.py", "experiments/judge/verdict.py",
                "experiments/runs/builtin.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x = 1\n")
    h0 = compute_code_hash(root)
    assert [p.relative_to(root).as_posix() for p in code_files(root)] == ["experiments/runs/builtin.py", "models/m.py"]
    (root / "commands/c.py").write_text("x = 2\n")  # the CLI, the report and the judge do not change a result
    (root / "experiments/report/html.py").write_text("x = 2\n")
    (root / "experiments/judge/verdict.py").write_text("x = 2\n")
    assert compute_code_hash(root) == h0
    (root / "models/m.py").write_text("x = 2\n")
    assert compute_code_hash(root) != h0


def cal_spec(path, name, family, quality):
    """A stand-in calibration: reproduces when `worse` really is worse (quality > 1.2)."""
    data = {"name": name, "seed": "ref", "quote": f"paper says {name}", "runner": "toy", "family": family,
            "base": {"toy": {"quality": 1.0, "noise": 0.01}}, "variants": {"good": {}, "bad": {"toy.quality": quality}},
            "seeds": [1000 + i for i in range(10)], "budget": {"steps": 20},
            "compare": [{"variant": "bad", "expect": "worse"}],
            "rule": {"min_effect": 0.2, "reason": "r"}, "reference": {"paper": f"Paper {name}", "figure": "fig 1",
                                                                         "expect": "bad is worse"}}
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path / f"{name}.yaml")


def test_failed_calibration_marks_its_family_uncalibrated(tmp_path):
    cals = [cal_spec(tmp_path / "cal", "cal_ok", "fam_a", 1.5), cal_spec(tmp_path / "cal", "cal_bad", "fam_b", 1.0)]
    claims = [toy("claim_a", family="fam_a"), toy("claim_b", family="fam_b"),
              toy("claim_c", family="fam_c")]
    with Store(tmp_path / "db.sqlite") as st:
        before = calibrations(st, "quick", cals)
        assert [c.status for c in before] == ["not run", "not run"]
        run_all(cals[:1], st, out_dir=tmp_path / "out", inline=True, log=None, max_new_runs=2)
        part = calibrations(st, "quick", cals[:1])[0]
        assert part.status == "incomplete" and "18 of 20 run(s) not finished" in part.detail and not part.reproduced
        cal_results = run_all(cals, st, out_dir=tmp_path / "out", inline=True, log=None)
        state = calibrations(st, "quick", cals, cal_results)
        assert [c.status for c in state] == ["reproduced", "not reproduced"] and [c.mark for c in state] == ["✔", "✗"]
        assert calibrations(st, "quick", cals)[0].status == "reproduced"  # read back from the store alone
        results = run_all(claims, st, out_dir=tmp_path / "out", inline=True, log=None)
    apply_calibrations(results, state)
    a, b, c = results
    assert a.verdict == "mixed" and a.shown_verdict.startswith("mixed") and not a.calibration  # one of each
    assert b.shown_verdict.startswith(f"uncalibrated ({b.verdict}") and "cal_bad: not reproduced" in b.calibration
    assert c.shown_verdict.startswith("uncalibrated") and "no calibration" in c.calibration
    html = render_html(results, calibrations=state)
    assert html.index("Calibrations") < html.index("Verdicts by claim") and "Paper cal_ok" in html
    assert "uncalibrated (contradicted: no effect" in html


def test_cli_calibrate_then_claims_smoke_report(tmp_path, monkeypatch, capsys):
    specs, cal = tmp_path / "specs", tmp_path / "cal"
    specs.mkdir()
    claim = toy("claim_a", family="fam_a").raw
    (specs / "01_claim_a.yaml").write_text(yaml.safe_dump(claim, sort_keys=False))
    cal_spec(cal, "cal_ok", "fam_a", 1.5)
    monkeypatch.setattr(spec_mod, "SPECS_DIR", specs)
    monkeypatch.setattr(spec_mod, "CALIBRATION_DIR", cal)
    out = tmp_path / "out"
    args = ["claims", "--out", str(out), "--jobs", "0"]
    assert main(args) == 0  # before calibrating: the family is uncalibrated
    text = capsys.readouterr().out
    assert SMOKE in text and "uncalibrated (" in text and "not run" in text
    assert main(args + ["--calibrate"]) == 0
    text = capsys.readouterr().out
    assert "✔ cal_ok" in text and (out / "calibration" / "report.html").exists()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "uncalibrated" not in text and "✔ cal_ok" in text  # the stored calibration counts
    report = json.loads((out / "verdicts.json").read_text())
    assert report["smoke_test"] and report["calibrations"][0]["status"] == "reproduced"
    assert SMOKE in (out / "report.html").read_text() and SMOKE in (out / "report.md").read_text()


def test_max_minutes_stops_starting_runs_and_the_next_call_continues(tmp_path):
    spec = toy("toy_time", seeds=(0, 1))
    spec = spec_from_dict({**spec.raw, "base": {"toy": {"quality": 1.0, "noise": 0.01, "sleep": 0.2}}})
    with Store(tmp_path / "db.sqlite") as st:
        res = run_all([spec], st, out_dir=tmp_path / "out", inline=True, log=None, max_minutes=0.2 / 60)
        sweep = res[0].sweep
        assert 1 <= sweep.ran < 6 and sweep.left == 6 - sweep.ran
        assert {r["status"] for r in st.runs("toy_time")} == {"done", "pending"}
        res = run_all([spec], st, out_dir=tmp_path / "out", inline=True, log=None)
        assert res[0].sweep.skipped == sweep.ran and res[0].sweep.ran == 6 - sweep.ran


def test_spec_format_errors_and_old_learned_form():
    raw = toy().raw
    with pytest.raises(ConfigError, match=r"rule has unknown key\(s\) \['min_efect'\]"):
        spec_from_dict({**raw, "rule": {"min_efect": 0.1}})
    with pytest.raises(ConfigError, match=r"rule.gate has unknown key\(s\) \['floor'\]"):
        spec_from_dict({**raw, "rule": {"gate": {"floor": 0.1}}})
    with pytest.raises(ConfigError, match="both 'gate' and the older 'learned'"):
        spec_from_dict({**raw, "rule": {"gate": {"chance": 1}, "learned": {"metric": "val_loss", "at_most": 1}}})
    with pytest.raises(ConfigError, match="lr_sweep"):
        spec_from_dict({**raw, "lr_sweep": [0.001, -1]})
    with pytest.raises(ConfigError, match=r"profiles.standard has unknown key\(s\) \['steps'\]"):
        spec_from_dict({**raw, "profiles": {"standard": {"steps": 5}}})
    old = spec_from_dict({**raw, "rule": {"min_effect": 0.1, "learned": {"metric": "val_acc", "at_least": 0.3}}})
    assert (old.rule.gate.goal, old.rule.gate.chance, old.rule.gate_metric) == ("max", 0.3, "val_acc")
    new = spec_from_dict({**raw, "task_reason": "because", "reference": {"paper": "P"},
                          "rule": {"min_effect": 0.1, "reason": "why m", "gate": {"chance": 2.6, "plateau": 1.9,
                                                                                   "ceiling": None, "margin": 0.02}}})
    assert new.rule.gate.learned_level == pytest.approx(1.88) and new.rule.reason == "why m"
    assert new.task_reason == "because" and new.reference == {"paper": "P"}


def test_builtin_specs_preregister_their_rule_and_task():
    """Every built-in training claim states why its minimum effect and why its task (pre-registration), and its
    gate (if any) is a valid one; calibrations load and quote the paper they reproduce."""
    from archlab.experiments.spec import builtin_specs, calibration_specs

    for s in builtin_specs():
        if s.kind != "train":
            continue
        assert s.rule.reason, f"{s.path}: rule.reason (why this minimum effect) is required for a built-in claim"
        assert s.task_reason, f"{s.path}: task_reason (why this task) is required for a built-in claim"
    for c in calibration_specs():
        assert c.kind == "train" and c.compare and c.families, f"{c.path}: a calibration needs comparisons and a family"


def test_seeds_are_fixed_in_advance_never_added_by_a_result(tmp_path):
    """An underpowered comparison stays inconclusive: no seed is added because of a result (optional stopping
    inflates the error rates), and the older `max_seeds` is refused with the reason."""
    raw = toy("toy_grow", rule={"min_effect": 0.2}).raw
    spec = spec_from_dict({**raw, "base": {"toy": {"quality": 1.0, "noise": 0.15}},
                           "variants": {"base": {}, "worse": {"toy.quality": 1.4}},
                           "compare": [{"variant": "worse", "expect": "worse"}]})
    with Store(tmp_path / "db.sqlite") as st:
        (res,) = run_all([spec], st, out_dir=tmp_path / "out", inline=True, log=None)
        assert res.comparisons[0].verdict.n == 8 and res.sweep.ran == 16
    with pytest.raises(ConfigError, match=r"max_seeds .* \(optional stopping\)"):
        spec_from_dict({**raw, "profiles": {"quick": {"max_seeds": 10}}})
