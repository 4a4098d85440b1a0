"""A locked protocol and honest labels: registration (amended / not registered specs are flagged), the seed's stated
scope (an unmet condition is 'out of scope at this scale', never 'contradicted'), the scale in every label and the
half-budget re-decision (budget-dependent verdicts)."""
from __future__ import annotations

import json

import pytest
import yaml
from engine_util import run_one

from archlab.cli import main
from archlab.config import ConfigError
from archlab.experiments.judge.budget import half_budget_check
from archlab.experiments.judge.results import Scale, claim_label, comparison_words
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.spec.registration import decisive_fields, load_registry, register, status_of
from archlab.experiments.sweep.store import Store

SEEDS = list(range(10))  # 6 seeds cannot survive the sweep-wide BH alone (3 tests: q ≥ 3 · 1/32)


def toy_dict(name="toy_claim", worse=1.5, **extra):
    d = {"name": name, "seed": "000", "quote": f"the {name} claim", "runner": "toy",
         "base": {"toy": {"quality": 1.0, "noise": 0.01}},
         "variants": {"base": {}, "ablated": {"toy.quality": worse}}, "seeds": SEEDS, "budget": {"steps": 100},
         "compare": [{"variant": "ablated", "expect": "worse"}], "rule": {"min_effect": 0.05, "reason": "r"}}
    return {**d, **extra}


def toy(**kw):
    return spec_from_dict(toy_dict(**kw))


# ---------------------------------------------------------------- registration


def test_amended_spec_is_flagged_with_the_changed_field(tmp_path):
    reg = tmp_path / "registration.json"
    register([toy()], reg, today="2024-01-02")
    assert status_of(toy(), load_registry(reg)).text == "registered (2024-01-02)"
    assert status_of(toy(), load_registry(reg)).pre_registered
    # words that explain a verdict are not part of it
    reworded = toy(title="another title", notes="more notes", quote="other words",
                   scope=[{"condition": "at scale", "met": False, "why": "tiny"}])
    assert status_of(reworded, load_registry(reg)).kind == "registered"
    changed = toy(rule={"min_effect": 0.1, "reason": "r"})
    st = status_of(changed, load_registry(reg))
    assert st.kind == "not registered" and "rule.min_effect" in st.text and not st.pre_registered
    with pytest.raises(ConfigError, match=r"rule\.min_effect.*--amend"):
        register([changed], reg, today="2024-02-03")
    assert load_registry(reg)["specs"]["toy_claim"]["history"] == []  # refused: nothing written
    register([changed], reg, amend="the noise was measured again", today="2024-02-03")
    st = status_of(changed, load_registry(reg))
    assert st.kind == "amended" and not st.pre_registered
    assert st.text == ("amended after registration (rule.min_effect, 2024-02-03: the noise was measured again)")
    entry = load_registry(reg)["specs"]["toy_claim"]
    (h,) = entry["history"]
    assert h["old_hash"] != h["new_hash"] == entry["hash"] and h["fields_changed"] == ["rule.min_effect"]
    assert entry["date"] == "2024-01-02" and entry["fields"]["rule"]["min_effect"] == 0.1


def test_decisive_fields_cover_the_protocol_and_not_its_words():
    f = decisive_fields(toy(profiles={"standard": {"lr_sweep": [0.001, 0.01], "lr_sweep_seeds": 1}}))
    assert {"procedure_version", "task", "metric", "goal", "compare", "rule", "match_params", "runner",
            "profiles"} <= set(f)
    assert f["profiles"]["standard"]["lr_sweep_seeds"] == 1 and f["profiles"]["standard"]["lr_sweep"] == [0.001, 0.01]
    assert f["compare"][0] == {"variant": "ablated", "baseline": "base", "expect": "worse", "metric": "val_loss",
                               "goal": "min", "min_effect": None}
    assert "reason" not in f["rule"] and "quote" not in json.dumps(f)
    gated = decisive_fields(toy(rule={"min_effect": 0.05, "reason": "r", "gate": {"chance": 3.0, "plateau": 2.0}}))
    assert gated["rule"]["gate"] == {"goal": "min", "chance": 3.0, "plateau": 2.0, "ceiling": None, "margin": 0.0}


def test_the_scan_kernel_is_not_decisive_but_what_it_computes_is():
    plain = decisive_fields(toy())
    base = {"toy": {"quality": 1.0, "noise": 0.01}}
    nested = {**base, "model": {"preset": "mamba-tiny", "mixer": {"ssm": {"scan": "compiled"}}}}
    dotted = {**base, "model": {"preset": "mamba-tiny", "mixer.ssm.scan": "compiled"}}
    without = {**base, "model": {"preset": "mamba-tiny"}}
    assert decisive_fields(toy(base=nested)) == decisive_fields(toy(base=dotted)) == decisive_fields(toy(base=without))
    assert decisive_fields(toy(base=without)) != plain  # the preset still decides
    kernel_only = toy(variants={"base": {}, "ablated": {"toy.quality": 1.5, "model.mixer.ssm.scan": "reference"}},
                      profiles={"standard": {"overrides": {"model.mixer.ssm.scan": "compiled"}}})
    assert decisive_fields(kernel_only) == plain
    other_field = toy(base={**base, "model": {"mixer.ssm.selective": []}})
    assert decisive_fields(other_field) != plain


def test_register_command_refuses_a_changed_entry_without_amend(tmp_path, capsys):
    reg = tmp_path / "reg.json"
    assert main(["claims", "--register", "--registration", str(reg), "--only", "cost"]) == 0
    data = json.loads(reg.read_text())
    name = next(iter(data["specs"]))
    data["specs"][name]["hash"] = "0" * 16  # as if the spec had been registered with other fields
    data["specs"][name]["fields"]["metric"] = "something_else"
    reg.write_text(json.dumps(data))
    assert main(["claims", "--register", "--registration", str(reg), "--only", "cost"]) == 2
    assert "--amend" in capsys.readouterr().err and json.loads(reg.read_text()) == data
    assert main(["claims", "--amend", "why", "--registration", str(reg)]) == 2  # --amend alone
    assert main(["claims", "--register", "--amend", "cost model fixed", "--registration", str(reg), "--only",
                 "cost"]) == 0
    entry = json.loads(reg.read_text())["specs"][name]
    assert entry["history"][-1]["fields_changed"] == ["metric"] and entry["history"][-1]["reason"] == \
        "cost model fixed"


def test_builtin_registration_file_parses():
    registry = load_registry()
    assert registry["specs"], "run: archlab claims --register"


def test_user_spec_shows_not_registered_and_runs(tmp_path, capsys):
    spec = tmp_path / "mine.yaml"
    spec.write_text(yaml.safe_dump(toy_dict(name="my_own_claim"), sort_keys=False))
    assert main(["experiment", str(spec), "--out", str(tmp_path / "out"), "--jobs", "0", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "[not registered]" in out and "0 pre-registered, 0 amended, 1 not registered" in out
    assert status_of(toy(name="my_own_claim")).text == "not registered"


# ---------------------------------------------------------------- scope and labels


def test_unmet_scope_is_out_of_scope_never_contradicted(tmp_path):
    scope = [{"condition": "in large language models", "met": {"quick": False, "standard": False, "full": True},
              "why": "a 1000-parameter toy is not one"}]
    with Store(tmp_path / "r.sqlite") as st:
        lost = run_one(toy(name="lost", worse=0.5, scope=scope), st, out_dir=tmp_path, inline=True, log=None)
        won = run_one(toy(name="won", scope=scope), st, out_dir=tmp_path, inline=True, log=None)
        plain = run_one(toy(name="lost", worse=0.5), st, out_dir=tmp_path, inline=True, log=None)
    assert lost.verdict == "contradicted"  # the decision itself is unchanged …
    shown = lost.shown_verdict  # … but it is not shown as a contradiction of the seed
    assert shown == "out of scope at this scale (in large language models: a 1000-parameter toy is not one)"
    assert "contradicted" not in shown and "contradicted" not in lost.comparison_label(lost.comparisons[0])
    assert won.shown_verdict == ("supported at 1000 params, 100 steps (outside the seed's stated conditions: in "
                                 "large language models)")
    assert plain.shown_verdict == "contradicted: reversed at 1000 params, 100 steps"


def _two_comparisons(name, scope):
    # 10 seeds: two comparisons under Holm need p ≤ 0.025, below the 6-seed sign-flip minimum 2/64
    variants = {"base": {}, "good": {"toy.quality": 1.5}, "bad": {"toy.quality": 0.5}}
    compare = [{"variant": "good", "expect": "worse"}, {"variant": "bad", "expect": "worse"}]
    return toy(name=name, scope=scope, variants=variants, seeds=list(range(10)), compare=compare)


def test_a_condition_of_one_comparison_scopes_that_comparison_only(tmp_path):
    cond = {"condition": "if the range is short", "met": False, "why": "it is long here"}
    with Store(tmp_path / "r.sqlite") as st:
        one = run_one(_two_comparisons("one", [{**cond, "comparisons": ["bad"]}]), st, out_dir=tmp_path, log=None)
        other = run_one(_two_comparisons("other", [{**cond, "comparisons": ["good"]}]), st, out_dir=tmp_path, log=None)
        whole = run_one(_two_comparisons("whole", [cond]), st, out_dir=tmp_path, log=None)
    good, bad = one.comparisons
    assert one.verdict == other.verdict == whole.verdict == "mixed"  # decisions unchanged by scope
    # the contradicted comparison is outside its condition: the one within decides, the other is named
    assert one.comparison_label(bad).startswith("out of scope at this scale (if the range is short")
    assert one.comparison_label(good) == "supported"
    assert one.shown_verdict == ("supported at 1000 params, 100 steps (1 of 2 comparisons out of scope at this "
                                 "scale: if the range is short: it is long here)")
    # the condition concerns the supported comparison only: the contradiction stands, with the condition noted
    assert other.shown_verdict == ("mixed at 1000 params, 100 steps (outside the seed's stated conditions: if the "
                                   "range is short)")
    assert other.comparison_label(other.comparisons[1]).startswith("contradicted: reversed")
    # a claim-wide condition scopes the whole claim, as before
    assert whole.shown_verdict.startswith("out of scope at this scale (if the range is short")


@pytest.mark.parametrize("scope, match", [
    ([{"condition": "c", "met": True, "why": "w", "comparisons": ["base"]}], r"\['base'\] compared nowhere"),
    ([{"condition": "c", "met": True, "why": "w", "comparisons": "ablated"}], "non-empty list"),
    ([{"condition": "c", "met": True}], "missing required key 'why'"),
    ([{"condition": "c", "met": {"quick": True}, "why": "w"}], "must state every profile"),
    ([{"condition": "c", "met": "yes", "why": "w"}], "must be true, false"),
    ([{"condition": "c", "met": True, "why": "w", "when": 1}], "unknown key"),
    ({"condition": "c"}, "scope must be a list"),
])
def test_scope_errors_name_the_field(scope, match):
    with pytest.raises(ConfigError, match=match):
        toy(scope=scope)


def test_scale_label_text():
    assert Scale(200_000, 300, None).text() == "0.2M params, 300 steps"
    assert Scale(200_000, 800, 800_000).text() == "0.2M params, 0.8M tokens"
    assert Scale(12_345_678, 100, 3_200_000_000).text() == "12M params, 3.2B tokens"
    assert Scale(None, 50, None).text() == "50 steps"
    assert comparison_words("contradicted: no effect", 0.01) == "contradicted: no effect ≥ 0.01"
    assert comparison_words("contradicted: opposite effect", 0.01) == "contradicted: reversed"

    class V:
        verdict, label, min_effect = "contradicted", "contradicted: no effect", 0.01
    assert claim_label("contradicted", [V()]) == "contradicted: no effect ≥ 0.01"


def test_scale_counts_tokens_from_the_config(tmp_path):
    spec = toy(base={"toy": {"quality": 1.0, "noise": 0.01, "params": 200_000}, "train": {"batch_size": 16},
                     "task": {"seq_len": 64}}, worse=1.0 + 1e-4, rule={"min_effect": 0.01, "reason": "r"})
    with Store(tmp_path / "r.sqlite") as st:
        r = run_one(spec, st, out_dir=tmp_path, inline=True, log=None)
    assert r.scale == Scale(200_000, 100, 100 * 16 * 64)
    assert r.shown_verdict.endswith(" at 0.2M params, 0.1M tokens")
    if r.verdict == "contradicted":
        assert r.shown_verdict == "contradicted: no effect ≥ 0.01 at 0.2M params, 0.1M tokens"


# ---------------------------------------------------------------- half budget


def _gated(name, plateau):
    # train_loss = quality + 1/(1 + step/10) + noise: the baseline is at ≈ 1.09 after 100 steps, ≈ 1.17 after 50
    return toy(name=name, metric="train_loss",
               rule={"min_effect": 0.05, "reason": "r", "gate": {"chance": 3.0, "plateau": plateau, "margin": 0.0}})


def test_budget_dependent_verdict_is_detected_on_toy_curves(tmp_path):
    with Store(tmp_path / "r.sqlite") as st:
        late = run_one(_gated("late", plateau=1.13), st, out_dir=tmp_path, inline=True, log=None)
        early = run_one(_gated("early", plateau=1.5), st, out_dir=tmp_path, inline=True, log=None)
        no_curve = run_one(toy(name="val"), st, out_dir=tmp_path, inline=True, log=None)
    assert late.verdict == early.verdict == "supported"
    half, line = half_budget_check(late)  # at step 50 the baseline has not yet passed the plateau
    assert half == "no verdict" and line == "budget-dependent (at half budget: no verdict)"
    late.budget_check = line
    assert late.shown_verdict.endswith("; budget-dependent (at half budget: no verdict)")
    assert half_budget_check(early) == ("supported", "same at half budget")
    assert half_budget_check(no_curve) == ("", "half-budget check not possible (the logged curve has no val_loss)")


def test_readme_and_docs_tables_show_scale_and_registration_or_a_dash():
    from archlab.experiments.report.claims_table import readme_table, verdicts_table

    claims = [{"claim": "no_ffn", "verdict": "supported at 0.2M params, 0.8M tokens", "decision": "supported",
               "params": 200_000, "steps": 800, "tokens": 800_000, "registration": "registered (2024-01-02)",
               "pre_registered": True},
              {"claim": "single_head", "verdict": "out of scope at this scale (in LLMs: tiny)", "params": 200_000,
               "steps": 800, "tokens": None, "registration": "amended after registration (rule.alpha, 2024-02-03: x)",
               "pre_registered": False},
              {"claim": "cnn_order", "verdict": "contradicted"}]  # an older verdicts.json: no new fields
    report = {"command": "archlab claims --standard", "claims": claims, "comparisons": []}
    text = readme_table(report)
    assert "**2 of 3 claims decided**" in text and "1 out of scope at this scale" in text
    assert "1 pre-registered, 1 amended, 1 not registered" in text
    assert "| 0.2M | 800 | 0.8M | supported at 0.2M params, 0.8M tokens | registered (2024-01-02) |" in text
    assert "| 0.2M | 800 | — | out of scope" in text
    assert "| cnn_order | 000 | Fashion-MNIST | — | — | — | contradicted | — |" in text
    assert "| no_ffn | char-level Shakespeare, 4 layers, d 64 | 0.2M | 800 | 0.8M | **supported at" in \
        verdicts_table(report)
