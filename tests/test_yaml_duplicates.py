"""Every YAML file archlab reads refuses a key given twice in one mapping, naming the key and both lines."""
from __future__ import annotations

import pytest
import yaml

from archlab.cli import main
from archlab.config import ConfigError, parse_value, read_mapping
from archlab.fileio import load_yaml


def test_duplicate_top_level_key_names_key_and_lines(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("model: gpt-tiny\nsteps: 50\nsteps: 7\n")
    with pytest.raises(ConfigError) as e:
        read_mapping(p)
    assert str(e.value) == (f"config file {str(p)!r} is not valid YAML: duplicate key 'steps' (first on line 2) "
                            "at line 3, column 1")


def test_duplicate_nested_key_and_spec_like_file(tmp_path):
    p = tmp_path / "spec.yaml"  # claim specs are read by read_mapping too
    p.write_text("name: x\nbase:\n  train:\n    lr: 1.0e-3\n    steps: 10\n    lr: 3.0e-4\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' \(first on line 4\) at line 6, column 5"):
        read_mapping(p)


def test_same_key_in_different_mappings_and_merge_override_are_fine(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("a: {steps: 1}\nb: {steps: 2}\nbase: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")
    assert read_mapping(p) == {"a": {"steps": 1}, "b": {"steps": 2}, "base": {"x": 1, "y": 2},
                               "c": {"x": 3, "y": 2}}
    assert load_yaml("[1, 2]") == [1, 2] and load_yaml("") is None


def test_load_yaml_raises_a_yaml_error_and_is_safe():
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        load_yaml("{a: 1, a: 2}")
    with pytest.raises(yaml.YAMLError):  # still a SafeLoader: no Python objects
        load_yaml("!!python/object/apply:os.system ['true']")


def test_dotted_override_value_with_duplicate_key():
    with pytest.raises(ConfigError, match=r"value '\{a: 1, a: 2\}' is not valid YAML \(duplicate key 'a'"):
        parse_value("{a: 1, a: 2}")


def test_cli_refuses_a_config_with_a_duplicate_key(tmp_path, capsys):
    p = tmp_path / "m.yaml"
    p.write_text("vocab_size: 64\nd_model: 32\nn_layers: 1\nd_model: 48\n")
    assert main(["cost", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"archlab cost: error: config file {str(p)!r} is not valid YAML: duplicate key 'd_model' "
                   "(first on line 2) at line 4, column 1")
