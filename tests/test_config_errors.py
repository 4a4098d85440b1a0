"""Config validation: clear messages naming the field, the value and what is allowed."""
import pytest

from archlab.config import ConfigError, apply_overrides, config_diff, from_dict, read_mapping
from archlab.models import model_config_from_dict, preset
from archlab.models.transformer_config import TransformerConfig


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'block.nrom'.*did you mean 'norm'"):
        apply_overrides(preset("gpt-tiny"), ["block.nrom=post"])


def test_unknown_top_level_key_in_mapping():
    with pytest.raises(ConfigError, match=r"'d_modle'.*did you mean 'd_model'"):
        from_dict(TransformerConfig, {"vocab_size": 10, "d_modle": 8, "n_layers": 1})


def test_bad_value_names_field_value_and_choices():
    expected = r"block.norm='middle' is not allowed; expected one of \['pre', 'post', 'none'\]"
    with pytest.raises(ConfigError, match=expected):
        apply_overrides(preset("gpt-tiny"), {"block.norm": "middle"})


def test_heads_must_divide_width():
    with pytest.raises(ConfigError, match=r"attn.n_heads=5 must divide d_model=64"):
        apply_overrides(preset("gpt-tiny"), {"attn.n_heads": 5})


def test_kv_heads_must_divide_heads():
    with pytest.raises(ConfigError, match=r"attn.n_kv_heads=3 must divide attn.n_heads=4"):
        apply_overrides(preset("llama-tiny"), {"attn.n_kv_heads": 3})


def test_rope_needs_even_head_size():
    with pytest.raises(ConfigError, match=r"pos.kind='rope' needs an even head size, got head_dim=7"):
        apply_overrides(preset("llama-tiny"), {"attn.head_dim": 7})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"n_layers='two' must be of type int"):
        apply_overrides(preset("gpt-tiny"), {"n_layers": "two"})


def test_string_overrides_parse_like_yaml_and_diff_back():
    base = preset("llama-tiny")
    variant = apply_overrides(base, ["block.norm=post", "attn.n_kv_heads=1", "block.order=[ffn, mixer]"])
    assert variant.block.norm == "post" and variant.attn.n_kv_heads == 1
    assert variant.block.order == ("ffn", "mixer")
    assert config_diff(base, variant) == {"attn.n_kv_heads": 1, "block.norm": "post", "block.order": ["ffn", "mixer"]}
    assert config_diff(base, base) == {}


def test_preset_mapping_with_overrides():
    cfg = model_config_from_dict({"preset": "gpt-tiny", "pos": {"kind": "none"}})
    assert cfg.pos.kind == "none" and cfg.d_model == 64


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match=r"unknown preset 'gpt-tinny'; did you mean 'gpt-tiny'"):
        preset("gpt-tinny")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_mapping(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_mapping(bad)


def test_token_id_out_of_range_and_too_long():
    import torch

    from archlab.models import build_model

    model = build_model("gpt-tiny")
    with pytest.raises(ValueError, match=r"token id 300, outside the vocabulary \[0, 256\)"):
        model(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match=r"beyond the model's max_seq_len=128"):
        model(torch.zeros(1, 129, dtype=torch.long))
