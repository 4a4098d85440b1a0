"""Bad input to the HF converters fails loudly, naming the field or tensor — never a silent partial load."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from archlab.cli import main
from archlab.config import apply_overrides
from archlab.interop import InteropError, from_hf, is_hf_dir, load_pretrained, to_hf
from archlab.models import build_model, preset


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """HF directories written from tiny archlab presets (no transformers needed)."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    out = {}
    for name in ("gpt-tiny", "llama-tiny", "bert-tiny", "mamba-tiny"):
        out[name] = to_hf(build_model(preset(name)), root / name)
    return out


def _edit_config(d, **changes):
    p = d / "config.json"
    cfg = json.loads(p.read_text())
    cfg.update(changes)
    p.write_text(json.dumps(cfg))


def _edit_tensors(d, fn):
    t = load_file(d / "model.safetensors")
    fn(t)
    save_file(t, d / "model.safetensors")


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("base,field,value", [
    ("gpt-tiny", "scale_attn_by_inverse_layer_idx", True),
    ("gpt-tiny", "reorder_and_upcast_attn", True),
    ("gpt-tiny", "activation_function", "quick_gelu"),
    ("llama-tiny", "rope_parameters", {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}),
    ("llama-tiny", "hidden_act", "tanh"),
    ("bert-tiny", "position_embedding_type", "relative_key"),
    ("mamba-tiny", "hidden_act", "tanh"),
])
def test_unsupported_config_field_is_named(hf_dirs, tmp_path, base, field, value):
    d = _copy(hf_dirs[base], tmp_path / "m")
    _edit_config(d, **{field: value})
    with pytest.raises(InteropError, match=field):
        from_hf(d)


def test_marian_prenorm_variant_is_rejected(tmp_path):
    torch.manual_seed(0)
    cfg = apply_overrides(preset("transformer-tiny"), {"pos.sinusoidal_layout": "split", "norm.eps": 1e-5,
                                                      "pad_token_id": 0})
    d = to_hf(build_model(cfg), tmp_path / "marian")
    assert from_hf(d).cfg.block.norm == "post"
    _edit_config(d, normalize_before=True)
    with pytest.raises(InteropError, match="normalize_before"):
        from_hf(d)


def test_unsupported_architecture(hf_dirs, tmp_path):
    d = _copy(hf_dirs["gpt-tiny"], tmp_path / "t5")
    _edit_config(d, model_type="t5", architectures=["T5ForConditionalGeneration"])
    with pytest.raises(InteropError, match="model_type='t5'"):
        from_hf(d)
    _edit_config(d, model_type="bert", architectures=["BertForPreTraining"])
    with pytest.raises(InteropError, match="BertForPreTraining"):
        from_hf(d)


def test_missing_tensor_is_named(hf_dirs, tmp_path):
    d = _copy(hf_dirs["llama-tiny"], tmp_path / "m")
    _edit_tensors(d, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(InteropError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*missing"):
        from_hf(d)


def test_extra_tensor_is_named(hf_dirs, tmp_path):
    d = _copy(hf_dirs["gpt-tiny"], tmp_path / "m")
    _edit_tensors(d, lambda t: t.update({"transformer.h.0.attn.q_attn.weight": torch.zeros(2, 2)}))
    with pytest.raises(InteropError, match=r"unexpected tensors.*transformer\.h\.0\.attn\.q_attn\.weight"):
        from_hf(d)


def test_shape_mismatch_is_named(hf_dirs, tmp_path):
    d = _copy(hf_dirs["bert-tiny"], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    _edit_config(d, intermediate_size=cfg["intermediate_size"] + 8)
    with pytest.raises(InteropError, match=r"intermediate\.dense\.weight.*shape"):
        from_hf(d)


def test_untied_weights_claimed_tied_are_rejected(hf_dirs, tmp_path):
    d = _copy(hf_dirs["mamba-tiny"], tmp_path / "m")
    _edit_tensors(d, lambda t: t.update({"lm_head.weight": torch.randn_like(t["backbone.embeddings.weight"])}))
    with pytest.raises(InteropError, match="lm_head.weight differs"):
        from_hf(d)


def test_pickle_checkpoints_are_refused(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (d / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(InteropError, match="pickle"):
        from_hf(d)


def test_corrupt_safetensors_is_named(hf_dirs, tmp_path):
    d = _copy(hf_dirs["gpt-tiny"], tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(InteropError, match="model.safetensors"):
        from_hf(d)


@pytest.mark.parametrize("overrides,field", [
    ({"pos.sinusoidal_layout": "interleaved"}, "pos.sinusoidal_layout"),
    ({"pos.kind": "learned"}, "pos.kind"),
    ({"pos.sinusoidal_layout": "split", "attn.scale": "none"}, "attn.scale"),  # HF always divides by √d
    ({"pos.sinusoidal_layout": "split", "attn.window": 3}, "attn.window"),
])
def test_export_of_unrepresentable_encoder_decoder(tmp_path, overrides, field):
    cfg = apply_overrides(preset("transformer-tiny"), {"pad_token_id": 0, "norm.eps": 1e-5, **overrides})
    with pytest.raises(InteropError, match=field):
        to_hf(build_model(cfg), tmp_path / "x")


@pytest.mark.parametrize("base,overrides,field", [
    ("gpt-tiny", {"block.norm": "post"}, "block.norm"),
    ("gpt-tiny", {"attn.n_kv_heads": 2}, "attn.n_kv_heads"),
    ("llama-tiny", {"norm.kind": "layernorm"}, "norm.kind"),
    ("llama-tiny", {"ffn.activation": "gelu"}, "ffn.activation"),
    ("bert-tiny", {"block.norm": "pre"}, "block.norm"),
    ("gpt-tiny", {"attn.scale": "none"}, "attn.scale"),  # every HF family divides the scores by √d
    ("llama-tiny", {"attn.scale": "none"}, "attn.scale"),
    ("bert-tiny", {"attn.scale": "none"}, "attn.scale"),
    ("gpt-tiny", {"attn.window": 4}, "attn.window"),  # HF GPT-2 / LLaMA / BERT attend to every allowed key
    ("llama-tiny", {"attn.window": 4}, "attn.window"),
    ("bert-tiny", {"attn.window": 4}, "attn.window"),
    ("mamba-tiny", {"mixer.ssm.selective": ["B"]}, "mixer.ssm.selective"),
])
def test_export_errors_name_the_field(tmp_path, base, overrides, field):
    with pytest.raises(InteropError, match=field):
        to_hf(build_model(apply_overrides(preset(base), overrides)), tmp_path / "x")


def test_load_pretrained_paths(hf_dirs, tmp_path, capsys):
    assert is_hf_dir(hf_dirs["gpt-tiny"]) and not is_hf_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "nope")
    assert main(["convert", "--from-hf", str(tmp_path / "nope"), "--to", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["convert", "--from-hf", str(tmp_path), "--to", str(tmp_path / "x")]) == 2
    assert "not a Hugging Face model" in capsys.readouterr().err


def test_marian_position_tables_are_verified(tmp_path):
    from archlab.nn.position import sinusoidal_table

    torch.manual_seed(0)
    cfg = apply_overrides(preset("transformer-tiny"), {"pos.sinusoidal_layout": "split", "norm.eps": 1e-5,
                                                      "pad_token_id": 0})
    d = to_hf(build_model(cfg), tmp_path / "marian")
    table = sinusoidal_table(cfg.max_seq_len, cfg.d_model, "split")
    _edit_tensors(d, lambda t: t.update({"model.encoder.embed_positions.weight": table.clone()}))
    from_hf(d)  # older exports carry the fixed table: accepted when it is the table
    _edit_tensors(d, lambda t: t.update({"model.decoder.embed_positions.weight": torch.randn_like(table)}))
    with pytest.raises(InteropError, match="decoder.embed_positions.weight.*sinusoid"):
        from_hf(d)
