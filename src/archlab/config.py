"""Frozen dataclass configs: YAML/JSON load, dotted overrides, diffs and validation."""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config names an unknown field, holds a bad value, or combines values that cannot work."""


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ConfigError unless value is one of allowed, naming the field and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; expected one of {allowed}")


def check_positive(field: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise ConfigError unless value is a positive (or non-negative) number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        what = "a finite non-negative number" if allow_zero else "a finite positive number"
        raise ConfigError(f"{field}={value!r} is not allowed; expected {what}")


def check_probability(field: str, value: float) -> None:
    """Raise ConfigError unless 0 <= value < 1."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{field}={value!r} is not allowed; expected a probability in [0, 1)")


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(options)}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(field: str, hint: Any, value: Any) -> Any:
    """Turn plain YAML/JSON data into the type a field declares (nested configs, tuples)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field} must be a mapping of {hint.__name__} fields, got {value!r}")
        return from_dict(hint, value, prefix=field + ".")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(field, a, value)
            except ConfigError:
                continue
        raise ConfigError(f"{field}={value!r} does not match {hint}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ConfigError(f"{field}={value!r} must be a list")
        inner = args[0] if args else Any
        return tuple(_coerce(f"{field}[{i}]", inner, v) for i, v in enumerate(value))
    if origin is typing.Literal:
        check_choice(field, value, args)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if hint is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{field}={value!r} must be of type {hint.__name__}")
    return value


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build config class cls from a nested mapping; unknown keys get a did-you-mean error."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {prefix + key!r}{_suggest(key, fields)}")
        kwargs[key] = _coerce(prefix + key, hints[key], value)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field was not given
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-data form of a config (tuples become lists), ready for JSON/YAML."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def flatten(d: Mapping[str, Any], prefix: str = "", *, keep_empty: bool = False) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; with keep_empty an empty mapping stays a value ({'a': {}} -> {'a': {}})."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and (v or not keep_empty):
            out.update(flatten(v, f"{prefix}{k}.", keep_empty=keep_empty))
        else:
            out[prefix + k] = v
    return out


def config_diff(a: Any, b: Any) -> dict[str, Any]:
    """The ablation that turns config a into config b, as {dotted.key: new_value}."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    keys = list(fa) + [k for k in fb if k not in fa]
    return {k: fb.get(k) for k in keys if fa.get(k, object()) != fb.get(k, object())}


def one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML errors span several: problem, then where)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if isinstance(error, yaml.YAMLError) and problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def parse_value(text: str) -> Any:
    """'2' -> 2, 'post' -> 'post', '[a, b]' -> ['a', 'b'], 'none' -> None (YAML rules)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"value {text!r} is not valid YAML ({one_line(e)}); quote it or fix the brackets") from None
    return None if value in ("none", "None") else value


def apply_overrides(cfg: Any, overrides: Mapping[str, Any] | Iterable[str]) -> Any:
    """Return cfg with dotted-key overrides applied ({'block.norm': 'post'} or ['block.norm=post'])."""
    if not isinstance(overrides, Mapping):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. block.norm=post)")
            k, v = item.split("=", 1)
            pairs[k.strip()] = parse_value(v)
        overrides = pairs
    data = to_dict(cfg)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                options = node.keys() if isinstance(node, dict) else []
                where = ".".join(parts[:i]) or "<root>"
                raise ConfigError(f"unknown config key {key!r} (no {part!r} under {where}){_suggest(part, options)}")
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return from_dict(type(cfg), data)


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace that re-runs validation."""
    plain = {k: to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in changes.items()}
    return from_dict(type(cfg), {**to_dict(cfg), **plain})


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with a clear error for a missing or bad file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise ConfigError(f"config file {str(p)!r} is not valid {kind}: {one_line(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
    return data


def dumps(cfg: Any) -> str:
    """Human-readable YAML of a config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
