"""The built-in claim specs: pre-registration fields, computed gate levels, shared baselines, pending specs, and
the generated claim → task table in docs/claims.md."""
from __future__ import annotations

import collections
import math
import re
from pathlib import Path

import pytest

from archlab.experiments.report.claims_table import END, START, claims_table, section, task_of
from archlab.experiments.spec import builtin_specs, load_spec, resolve

ROOT = Path(__file__).resolve().parents[2]
PENDING = ROOT / "src" / "archlab" / "experiments" / "specs_pending"
SPECS = builtin_specs()


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_builtin_spec_is_preregistered(spec):
    """min_effect with a one-line reason, a task_reason and a quoted seed sentence; a training claim has a gate
    (except the throughput measurements, which learn nothing) and a positive minimum effect."""
    assert spec.quotes and all(q.text for q in spec.quotes)
    assert spec.rule.reason, f"{spec.name}: rule.reason missing"
    assert spec.task_reason, f"{spec.name}: task_reason missing"
    if spec.kind == "train":
        assert spec.rule.min_effect > 0
        if spec.runner not in ("step_throughput", "decode_throughput"):
            assert spec.rule.gate is not None, f"{spec.name}: no gate"
            assert spec.rule.gate.learned_level is not None
        assert "standard" in spec.profiles and "quick" in spec.profiles


def test_char_lm_gate_levels_are_the_corpus_figures():
    """chance = ln(#characters) and plateau = unigram entropy of the shipped corpus, as the specs state."""
    from archlab.data.corpora import load_corpus

    text = load_corpus("shakespeare")
    counts = collections.Counter(text)
    n = len(text)
    chance = math.log(len(counts))
    unigram = -sum(c / n * math.log(c / n) for c in counts.values())
    text_specs = [s for s in SPECS if s.base.get("task", {}).get("name") == "causal_lm"]
    assert len(text_specs) >= 15
    for s in text_specs:
        assert s.rule.gate.chance == pytest.approx(chance, abs=1e-3), s.name
        assert s.rule.gate.plateau == pytest.approx(unigram, abs=1e-3), s.name


def test_text_claims_share_their_baseline_runs():
    """The Transformer text claims resolve their baseline to one run per (lr, seed), so it trains once."""
    names = ["no_positional_encoding", "no_residual", "no_ffn", "single_head", "no_layernorm", "rope_vs_learned",
             "attention_after_ffn"]
    by = {s.name: s for s in SPECS}
    keys = []
    for n in names:
        spec = by[n]
        base = next(iter(spec.variants))
        keys.append(sorted(p.run_key for p in resolve(spec, "standard", variants=[base])))
    assert all(k == keys[0] for k in keys) and len(keys[0]) == 3  # phase 1 of the lr sweep: 3 lrs on seed 100
    # post-norm's pre-norm arm at lr 1e-2 is the base run at the sweep's 1e-2 point (all seeds once 1e-2 wins)
    post = resolve(by["post_norm_warmup"], "standard", variants=["pre_no_warmup"])
    spec = by["no_residual"]
    base = next(iter(spec.variants))
    at_1e2 = resolve(spec, "standard", variants=[base], best_lr={base: 0.01})
    # phase 2: the 3 selection runs and the 10 test seeds at the best lr
    assert {p.run_key for p in post} <= {p.run_key for p in at_1e2} and len(at_1e2) == 13


def test_pending_specs_parse_but_are_not_builtin():
    names = {s.name for s in SPECS}
    for f in sorted(PENDING.glob("*.yaml")):
        spec = load_spec(f)
        assert spec.name not in names
        assert spec.rule.reason and spec.task_reason and "pending" in spec.notes


def test_mamba_variant_specs_are_builtin_and_their_switches_build():
    """The three specs that waited in specs_pending/ for seed 000's Mamba switches (issue 16 item 3) now run: every
    variant's config builds, the activation only moves (same parameters), no SSM and the RNN change the count."""
    from archlab.experiments.runs.builtin import count_params

    by = {s.name: s for s in SPECS}
    n = {}
    for name in ("mamba_no_ssm", "mamba_activation_position", "mamba_rnn_conv"):
        n.update({p.variant: p.n_params for p in resolve(by[name], "quick", count_params=count_params)})
    assert n["after_ssm"] == n["before_conv"] == n["selective"]
    assert n["no_ssm"] < n["selective"] and n["rnn_conv"] != n["selective"]


def test_claims_table_in_docs_is_the_generated_one():
    page = (ROOT / "docs" / "claims.md").read_text(encoding="utf-8")
    i, j = page.index(START), page.index(END) + len(END)
    assert page[i:j] == section(), "regenerate: python -m archlab.experiments.report.claims_table --write"
    table = claims_table()
    for s in SPECS:
        assert f"| {s.name} |" in table


def test_claims_table_describes_the_task_each_profile_runs():
    # the table describes the profile the docs quote (standard), whose overrides may differ from the base config
    shapes = next(s for s in SPECS if s.name == "transformer_shapes")
    relu = next(s for s in SPECS if s.name == "mamba_relu")
    assert task_of(shapes, "quick") == "sequence reversal (12 tokens)"
    assert task_of(shapes) == task_of(shapes, "standard") == "sequence reversal (24 tokens)"
    assert task_of(relu, "quick") == "induction_heads (T=32)" and task_of(relu) == "induction_heads (T=64)"


# ---------------------------------------------------------------- quotes are the seeds' own sentences

SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"  # beside the repository (CI checks it out)
ELISION = re.compile(r"\s*(?:\.\.\.|…)\s*")  # "a ... b": two verbatim pieces of one passage, in order


def normalise_quote(text: str) -> str:
    """Whitespace collapsed; markdown emphasis (*, _, `) and inline-math markup ($, \\, {, }) dropped, so that the
    seed's `**854M ops**` or `$\\Delta$` reads as the spec's `854M ops` or `Δ`."""
    text = text.replace("\\Delta", "Δ").replace("\\forall", "∀")
    text = " ".join(re.sub(r"[*_`$\\{}]", "", text).split())
    return re.sub(r" ([,.;:?!])", r"\1", text)  # `$\Delta$ , B` -> `Δ, B`


def seed_texts() -> dict[str, str]:
    """'000' -> the normalised text of seed 000 (files are named NNN_<hash>.txt)."""
    return {p.name[:3]: normalise_quote(p.read_text(encoding="utf-8")) for p in sorted(SEEDS_DIR.glob("*.txt"))}


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="the seed documents (../shared/seeds) are not beside the repo")
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_quote_is_the_seeds_own_text(spec):
    """Each quote (`quote:` or `quotes[i].text`) appears verbatim in the seed its `seed:` names, after whitespace and
    markdown-emphasis normalisation; an elision ("...") splits a quote into pieces found in that order."""
    seeds = seed_texts()
    for q in spec.quotes:
        assert q.seed in seeds, f"{spec.name}: seed {q.seed!r} is not one of {sorted(seeds)}"
        text, at = seeds[q.seed], 0
        for piece in filter(None, (normalise_quote(p) for p in ELISION.split(q.text))):
            found = text.find(piece, at)
            assert found >= 0, f"{spec.name}: not verbatim in seed {q.seed}: {piece!r}"
            at = found + len(piece)


# ---------------------------------------------------------------- scope: the conditions the sentence states

@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_builtin_spec_states_its_scope(spec):
    """`scope:` lists each condition the quoted sentence states (in its own words, so it is found in a quote), and
    whether each profile meets it (one bool, or one per profile), with a reason; [] when it states none."""
    scope = spec.raw.get("scope")
    assert isinstance(scope, list), f"{spec.name}: no scope list"
    quoted = " ".join(normalise_quote(q.text).lower() for q in spec.quotes)
    for i, entry in enumerate(scope):
        assert {"condition", "met", "why"} <= set(entry) <= {"condition", "met", "why", "comparisons"}, \
            f"{spec.name}: scope[{i}] keys {sorted(entry)}"
        compared = {c.variant for c in spec.compare}
        assert set(entry.get("comparisons", [])) <= compared, f"{spec.name}: scope[{i}].comparisons"
        assert normalise_quote(entry["condition"]).lower() in quoted, \
            f"{spec.name}: scope[{i}].condition {entry['condition']!r} is not the quote's own words"
        met = entry["met"]
        assert isinstance(met, bool) or (isinstance(met, dict) and set(met) == {"quick", "standard", "full"}
                                         and all(isinstance(v, bool) for v in met.values())), \
            f"{spec.name}: scope[{i}].met={met!r}"
        assert str(entry["why"]).strip(), f"{spec.name}: scope[{i}].why is empty"


def test_a_duplicate_spec_number_or_name_is_refused(tmp_path, monkeypatch):
    """Two built-in spec files with the same NN_ prefix (or the same claim name) are refused with the next free
    number, so a new claim cannot silently shadow another."""
    from archlab.config import ConfigError
    from archlab.experiments.spec import schema

    src = sorted(schema.SPECS_DIR.glob("*.yaml"))[0]
    monkeypatch.setattr(schema, "SPECS_DIR", tmp_path)
    (tmp_path / "01_a.yaml").write_text(src.read_text())
    (tmp_path / "01_b.yaml").write_text(src.read_text())
    with pytest.raises(ConfigError, match="number 01 is already used by 01_a.yaml; the next free number is 02"):
        schema.builtin_specs()
    (tmp_path / "01_b.yaml").rename(tmp_path / "02_b.yaml")
    with pytest.raises(ConfigError, match="is already used by"):
        schema.builtin_specs()  # same claim name in two files
    (tmp_path / "notnumbered.yaml").write_text(src.read_text())
    with pytest.raises(ConfigError, match="NN_name.yaml"):
        schema.builtin_specs()


def test_lr_selection_seeds_and_test_seeds_are_disjoint_and_calibrations_share_no_run():
    """Every built-in claim picks its lr on seeds that are not test seeds, uses at least 6 test seeds at the
    standard and full profiles, and no claim run has the run key of a calibration run (seeds 1000+ for those)."""
    from archlab.experiments.spec import calibration_specs

    cals = calibration_specs()
    cal_keys = {p.run_key for c in cals for prof in ("quick", "standard", "full") for p in resolve(c, prof)}
    cal_seeds = {s for c in cals for prof in ("quick", "standard", "full")
                 for s in c.seeds_for(prof) + c.lr_select_seeds_for(prof)}
    for spec in [s for s in SPECS if s.kind == "train"]:
        for prof in ("standard", "full"):
            test, select = spec.seeds_for(prof), spec.lr_select_seeds_for(prof)
            assert len(test) >= 6, f"{spec.name} ({prof}): {len(test)} test seeds"
            assert not set(test) & set(select), f"{spec.name} ({prof}): lr picked on a test seed"
            assert not spec.lr_sweep_seeds_for(prof), f"{spec.name}: lr_sweep_seeds picks the lr on test seeds"
        for prof in ("quick", "standard", "full"):
            assert not (set(spec.seeds_for(prof)) | set(spec.lr_select_seeds_for(prof))) & cal_seeds, spec.name
    claim_keys = {p.run_key for s in SPECS if s.kind == "train" for p in resolve(s, "standard")}
    assert claim_keys and cal_keys and not claim_keys & cal_keys
