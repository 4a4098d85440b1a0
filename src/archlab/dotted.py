"""Dotted keys on plain nested mappings: the one implementation every config layer uses.

Model configs (archlab.config), run configs (archlab.train.run_config), presets and experiment specs all read
`a.b.c` keys with these functions:

- `flatten` / `unflatten`: {'a': {'b': 1}} <-> {'a.b': 1}; a key that is both a value and a section
  (`a=1` and `a.b=2`) is a ConfigError naming both keys.
- `get_dotted` / `set_dotted`: read or write one dotted key of a nested mapping (`set_dotted` creates missing
  sections; with `strict=True` it refuses a key that is not there, with a did-you-mean hint).
- `apply_diff`: a copy of a nested mapping with a dotted-key diff applied (a mapping value is merged key by key);
  `expand`: the nested form of a mapping whose keys may be dotted, at any depth.
- `parse_value` / `parse_assignments`: the text of `key=value` overrides, read by YAML rules.

The rule for "no value", the same everywhere: a value means the same on the command line (`key=value`) as in a
YAML file (`key: value`). `null` and `~` are None; `none` / `None` stay the word "none". Only a typed config
(archlab.config.from_dict) interprets them, by the field's declared type: in a field that may be None, any of them
is None (`attn.n_kv_heads=none`); in a string field they are the choice "none" that turns a feature off
(`pos.kind=none`, `block.norm=none`). Free-form sections (a run config's task options) keep them as written.
Text that PyYAML (YAML 1.1) keeps as a string but that reads as a number (`1e-3`) is the number.
"""
from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from archlab.errors import ConfigError, one_line
from archlab.fileio import load_yaml

NONE_WORDS = ("none", "None", "null", "Null", "NULL", "~")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def is_none_word(value: Any) -> bool:
    """True for the words a typed field that may be None reads as None (see the module doc)."""
    return isinstance(value, str) and value.strip() in NONE_WORDS


def suggest(name: str, options: Iterable[str]) -> str:
    """'; did you mean X?' (or the valid keys) for an unknown key."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(options)}"


def flatten(d: Mapping[str, Any], prefix: str = "", *, keep_empty: bool = False) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; with keep_empty an empty mapping stays a value ({'a': {}} -> {'a': {}})."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and (v or not keep_empty):
            out.update(flatten(v, f"{prefix}{k}.", keep_empty=keep_empty))
        else:
            out[prefix + k] = v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}; see `_merge_put` for keys that meet (`a=1` with `a.b=2` is an error)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        _merge_put(out, str(key), value)
    return out


def get_dotted(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """data['a']['b'] for key 'a.b', or default."""
    node: Any = data
    for p in key.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return default
        node = node[p]
    return node


def set_dotted(data: dict[str, Any], key: str, value: Any, *, strict: bool = False) -> None:
    """data['a']['b'] = value (a deep copy) for key 'a.b'. Missing sections are created (a None section becomes
    one); with strict every part must exist already (an unknown key gets a did-you-mean error). A key that goes
    through a value that is not a mapping (`a.b` where a=1) is a ConfigError."""
    node, leaf = _section(data, key, strict=strict)
    node[leaf] = copy.deepcopy(value)


def _section(data: dict[str, Any], key: str, *, strict: bool = False) -> tuple[dict[str, Any], str]:
    """The mapping that holds key's last part (created as needed), and that part."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts):
        if strict and part not in node:
            where = ".".join(parts[:i]) or "<root>"
            raise ConfigError(f"unknown config key {key!r} (no {part!r} under {where}){suggest(part, node)}")
        if i == len(parts) - 1:
            break
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"config key {key!r} conflicts with {'.'.join(parts[:i + 1])}={nxt!r}")
        node = nxt
    return node, parts[-1]


def _merge_put(data: dict[str, Any], key: str, value: Any) -> None:
    """set_dotted for keys that may meet: a mapping value merges (shallowly) with the keys already set under it;
    any other value there is a ConfigError naming both."""
    node, leaf = _section(data, key)
    old = node.get(leaf)
    if isinstance(old, dict) and old:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key}={value!r} conflicts with the keys set under it "
                              f"({', '.join(f'{key}.{k}' for k in old)})")
        value = {**old, **value}
    node[leaf] = copy.deepcopy(value)


def apply_diff(base: Mapping[str, Any], diff: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of base with the dotted-key diff applied: a mapping value is merged key by key into a mapping
    already there, any other value replaces what was there."""
    out = copy.deepcopy(dict(base))
    for key, value in diff.items():
        if isinstance(value, Mapping) and isinstance(get_dotted(out, key), Mapping):
            for k2, v2 in flatten(value, keep_empty=True).items():
                set_dotted(out, f"{key}.{k2}", v2)
        else:
            set_dotted(out, key, value)
    return out


def expand(data: Any) -> Any:
    """Nested form of a mapping whose keys may be dotted, at any depth:
    {'model': {'attn.n_heads': 4}} -> {'model': {'attn': {'n_heads': 4}}}; anything else is copied."""
    if not isinstance(data, Mapping):
        return copy.deepcopy(data)
    out: dict[str, Any] = {}
    for k, v in data.items():
        _merge_put(out, str(k), expand(v))
    return out


def expand_values(diff: Mapping[str, Any]) -> dict[str, Any]:
    """A dotted-key diff whose mapping values are put in nested form (its own keys stay dotted)."""
    return {k: expand(v) if isinstance(v, Mapping) else v for k, v in diff.items()}


def parse_value(text: str) -> Any:
    """'2' -> 2, 'post' -> 'post', '[a, b]' -> ['a', 'b'], '1e-3' -> 0.001, 'null'/'~' -> None, 'none' -> 'none'."""
    try:
        value = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"value {text!r} is not valid YAML ({one_line(e)}); quote it or fix the brackets") from None
    if isinstance(value, str) and _FLOAT.match(text.strip()):  # unquoted only
        return float(value)
    return value


def parse_assignments(items: Mapping[str, Any] | Iterable[str], example: str = "block.norm=post") -> dict[str, Any]:
    """['a.b=1', 'c=x'] -> {'a.b': 1, 'c': 'x'} (values by parse_value); a mapping is returned as it is."""
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. {example})")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out
