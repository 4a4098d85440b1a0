"""A LLaMA config.json with both `rope_parameters` and `rope_scaling` (and `rope_theta`) is read the way
transformers reads it: a non-empty `rope_scaling` wins whatever the key order, its own `rope_theta` or the
top-level one applies, never the discarded dict's. Checked against transformers on tiny random models."""
from __future__ import annotations

import json

import pytest
import torch
from _interop_util import batch, max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.cli import main  # noqa: E402
from archlab.interop import from_hf, load_pretrained, to_hf  # noqa: E402
from archlab.interop.llama import rope_params_from_hf  # noqa: E402

T = transformers
V = 61
TOL = 1e-4
DEFAULT = {"rope_type": "default", "rope_theta": 500.0}
LINEAR = {"rope_type": "linear", "factor": 2.0}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8, "rope_theta": 10000.0}

# (rope keys in file order, the archlab scaling kind transformers' choice maps to, its rope_theta)
CASES = {
    "scaling-linear-after-params-default": ([("rope_parameters", DEFAULT), ("rope_scaling", LINEAR)], "linear", 1e4),
    "scaling-linear-before-params-default": ([("rope_scaling", LINEAR), ("rope_parameters", DEFAULT)], "linear", 1e4),
    "scaling-llama3-after-params-linear": ([("rope_parameters", LINEAR), ("rope_scaling", LLAMA3)], "llama3", 1e4),
    "scaling-llama3-before-params-linear": ([("rope_scaling", LLAMA3), ("rope_parameters", LINEAR)], "llama3", 1e4),
    "scaling-default-after-params-llama3": ([("rope_parameters", LLAMA3), ("rope_scaling", DEFAULT)], "none", 500.0),
    "scaling-default-before-params-llama3": ([("rope_scaling", DEFAULT), ("rope_parameters", LLAMA3)], "none", 500.0),
    # 4.x spelling (`type`) and a top-level rope_theta: the discarded rope_parameters' theta is not used
    "legacy-type-top-theta": ([("rope_theta", 300.0), ("rope_parameters", {**LINEAR, "rope_theta": 7.0}),
                               ("rope_scaling", {"type": "linear", "factor": 3.0})], "linear", 300.0),
    "scaling-null": ([("rope_scaling", None), ("rope_parameters", {**LINEAR, "rope_theta": 900.0})], "linear", 900.0),
    "scaling-empty": ([("rope_parameters", {**LINEAR, "rope_theta": 900.0}), ("rope_scaling", {})], "linear", 900.0),
    # llama3 without original_max_position_embeddings: transformers takes max_position_embeddings
    "scaling-llama3-no-original": ([("rope_parameters", DEFAULT), ("rope_scaling", {
        k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"})], "llama3", 1e4),
}


def _hf_dir(tmp_path, items, seed=0):
    """A tiny random LlamaForCausalLM saved to tmp_path/hf, its config.json's RoPE keys replaced by `items`."""
    torch.manual_seed(seed)
    cfg = T.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                        bos_token_id=None, eos_token_id=None)
    d = tmp_path / "hf"
    scramble(T.LlamaForCausalLM(cfg)).save_pretrained(d)
    data = json.loads((d / "config.json").read_text())
    for k in ("rope_parameters", "rope_scaling", "rope_theta"):
        data.pop(k, None)
    data.update(items)  # in this order: the file order of the keys
    (d / "config.json").write_text(json.dumps(data, indent=2))
    assert [k for k in json.loads((d / "config.json").read_text()) if k.startswith("rope")] == [k for k, _ in items]
    return d


def _hf_logits(d, ids, mask):
    with torch.no_grad():
        return T.AutoModelForCausalLM.from_pretrained(d).eval()(ids, attention_mask=mask).logits


@pytest.mark.parametrize("name", list(CASES))
def test_conflicting_rope_keys_follow_transformers(name, tmp_path):
    items, kind, theta = CASES[name]
    d = _hf_dir(tmp_path, items)
    ids, mask = batch(V, t=24, pad_from=15)
    ref = _hf_logits(d, ids, mask)
    model = from_hf(d)
    assert model.cfg.pos.rope_scaling.kind == kind and model.cfg.pos.rope_theta == theta
    with torch.no_grad():
        assert max_diff(model(ids, attention_mask=mask), ref, mask) <= TOL
    # the resolution itself equals transformers' (rope_type, rope_theta, factor, ...)
    hf_cfg = T.AutoConfig.from_pretrained(d)
    ours = rope_params_from_hf(json.loads((d / "config.json").read_text()))[1]
    assert {k: v for k, v in ours.items() if k != "type"} == {k: v for k, v in hf_cfg.rope_parameters.items()
                                                              if k != "type"}
    # the export writes the resolved RoPE as rope_parameters: transformers reads it back the same
    to_hf(model, tmp_path / "export")
    assert max_diff(_hf_logits(tmp_path / "export", ids, mask), ref, mask) <= TOL


def test_the_losing_key_would_have_changed_the_logits(tmp_path):
    """The cases are not vacuous: reading the rope_parameters that rope_scaling overrides gives other logits."""
    items = CASES["scaling-linear-after-params-default"][0]
    d = _hf_dir(tmp_path / "both", items)
    only = _hf_dir(tmp_path / "only", [items[0]])
    ids, mask = batch(V, t=24, pad_from=15)
    assert max_diff(_hf_logits(d, ids, mask), _hf_logits(only, ids, mask), mask) > 0.1


def test_load_pretrained_sample_and_convert_paths(tmp_path, capsys):
    d = _hf_dir(tmp_path, CASES["scaling-linear-before-params-default"][0])
    ids, mask = batch(V, t=24, pad_from=15)
    ref = _hf_logits(d, ids, mask)
    model, _ = load_pretrained(d)  # what `archlab sample DIR` and `eval` load
    with torch.no_grad():
        assert max_diff(model(ids, attention_mask=mask), ref, mask) <= TOL
    # convert checks the written archlab model against transformers reading the source (exit 2 if > 1e-4)
    assert main(["convert", "--from-hf", str(d), "--to", str(tmp_path / "al")]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    assert main(["convert", "--from-hf", str(d), "--to", str(tmp_path / "al2"), "--no-check"]) == 0
    back, _ = load_pretrained(tmp_path / "al2")
    with torch.no_grad():
        assert max_diff(back(ids, attention_mask=mask), ref, mask) <= TOL


def test_rope_dict_of_the_wrong_type_is_named(tmp_path, capsys):
    d = _hf_dir(tmp_path, [("rope_parameters", DEFAULT), ("rope_scaling", "linear")])
    capsys.readouterr()  # transformers' save progress bar
    assert main(["convert", "--from-hf", str(d), "--to", str(tmp_path / "x"), "--no-check"]) == 2
    assert capsys.readouterr().err.strip() == (
        "archlab convert: error: LLaMA config field 'rope_scaling' must be a JSON object (rope_type, factor, ...), "
        "got 'linear'")
