"""archlab.dotted: the one dotted-key implementation (configs, run configs, presets, experiment specs)."""
import pytest

from archlab import dotted
from archlab.config import ConfigError, apply_overrides, from_dict, to_dict
from archlab.models import preset
from archlab.train.run_config import apply_run_overrides, run_config_from_dict

NESTED_FLAT = [  # nested form, flat form
    ({}, {}),
    ({"a": 1}, {"a": 1}),
    ({"a": {"b": 1, "c": {"d": None}}}, {"a.b": 1, "a.c.d": None}),
    ({"block": {"order": ["mixer", "ffn"]}, "attn": {"n_heads": 4}}, {"block.order": ["mixer", "ffn"],
                                                                       "attn.n_heads": 4}),
    ({"x": [{"a": 1}, {"b": 2}]}, {"x": [{"a": 1}, {"b": 2}]}),  # lists are values: never entered
    ({"pos": {"kind": "none"}}, {"pos.kind": "none"}),
]


@pytest.mark.parametrize("nested,flat", NESTED_FLAT)
def test_flatten_unflatten_round_trip(nested, flat):
    assert dotted.flatten(nested) == flat
    assert dotted.unflatten(flat) == nested
    assert dotted.unflatten(dotted.flatten(nested)) == nested
    assert dotted.expand(flat) == nested
    for key, value in flat.items():
        assert dotted.get_dotted(nested, key) == value


VALUES = [  # text after `=`, the value it is read as
    ("2", 2), ("1.5", 1.5), ("1e-3", 1e-3), ("-2E4", -2e4), ("post", "post"), ("true", True),
    ("[a, b]", ["a", "b"]), ("[1, 2]", [1, 2]), ("{a: 1}", {"a": 1}),
    ("null", None), ("~", None), ("none", "none"), ("None", "None"), ("'1e-3'", "1e-3"),
]


@pytest.mark.parametrize("text,value", VALUES)
def test_parse_value(text, value):
    assert dotted.parse_value(text) == value
    assert dotted.parse_assignments([f"a.b={text}"]) == {"a.b": value}


@pytest.mark.parametrize("word", ["none", "None", "null", "~"])
def test_one_rule_for_none_in_every_layer(word):
    cfg = preset("gpt-tiny")
    # a typed field that may be None reads every spelling as None; a string choice field reads it as "none"
    got = apply_overrides(cfg, [f"attn.n_kv_heads={word}", f"pos.kind={word}"])
    assert got.attn.n_kv_heads is None and got.pos.kind == "none"
    assert from_dict(type(cfg), {**to_dict(cfg), "pos": {"kind": dotted.parse_value(word)}}).pos.kind == "none"
    # the run config: the same through its model section, and None in an optional train field
    rc = run_config_from_dict({"model": {"preset": "gpt-tiny"}, "task": "toy_lm"})
    rc = apply_run_overrides(rc, [f"model.pos.kind={word}", f"train.min_lr={word}"])
    assert rc.model_config().pos.kind == "none" and rc.train.min_lr is None
    # presets take the same dotted overrides (keyword form: __ for .)
    assert preset("gpt-tiny", pos__kind=dotted.parse_value(word)).pos.kind == "none"


CONFLICTS = [  # flat keys that cannot both hold, in either order
    {"a": 1, "a.b": 2},
    {"a.b": 2, "a": 1},
    {"a.b.c": 1, "a.b": "x"},
]


@pytest.mark.parametrize("flat", CONFLICTS)
def test_conflicting_keys_are_a_clear_error(flat):
    with pytest.raises(ConfigError, match=r"config key 'a\.b|config key a(\.b)?=.*conflicts"):
        dotted.unflatten(flat)
    with pytest.raises(ConfigError, match="conflicts"):
        dotted.expand(flat)


def test_set_get_apply_diff():
    data = {"model": {"attn": {"n_heads": 4}}, "train": None}
    dotted.set_dotted(data, "model.pos.kind", "rope")
    dotted.set_dotted(data, "train.lr", 1e-3)  # a None section becomes a mapping
    assert data == {"model": {"attn": {"n_heads": 4}, "pos": {"kind": "rope"}}, "train": {"lr": 1e-3}}
    assert dotted.get_dotted(data, "model.attn.n_heads") == 4
    assert dotted.get_dotted(data, "model.nope.x", "dflt") == "dflt"
    with pytest.raises(ConfigError, match="conflicts with model.attn.n_heads=4"):
        dotted.set_dotted(data, "model.attn.n_heads.x", 1)
    with pytest.raises(ConfigError, match="did you mean 'n_heads'"):
        dotted.set_dotted(data, "model.attn.n_head", 1, strict=True)
    # apply_diff merges a mapping value key by key, any other value replaces; the base is not changed
    out = dotted.apply_diff(data, {"model.attn": {"dropout": 0.1}, "train": {"lr": 3e-3}, "model.pos": "x"})
    assert out == {"model": {"attn": {"n_heads": 4, "dropout": 0.1}, "pos": "x"}, "train": {"lr": 3e-3}}
    assert data["model"]["pos"] == {"kind": "rope"}
    # expand merges a dotted key with the section it names, at any depth
    assert dotted.expand({"model": {"attn.n_heads": 2, "attn": {"dropout": 0.0}}}) == {
        "model": {"attn": {"n_heads": 2, "dropout": 0.0}}}


def test_override_errors_name_the_key():
    with pytest.raises(ConfigError, match="must look like key=value"):
        dotted.parse_assignments(["attn.n_heads"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        dotted.parse_value("[1, 2")
    with pytest.raises(ConfigError, match=r"unknown config key 'atn.n_heads'.*did you mean 'attn'"):
        apply_overrides(preset("gpt-tiny"), ["atn.n_heads=2"])
