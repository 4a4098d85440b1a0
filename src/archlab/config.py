"""Frozen dataclass configs: YAML/JSON load, dotted overrides, diffs and validation.

Dotted keys (flatten, parse_value, apply_overrides) use archlab.dotted, the one implementation; `from_dict` applies
its rule for "no value": `none`, `None`, `null` and `~` are None in a field that may be None, and the choice "none"
in a string field."""
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

from archlab import run_configs
from archlab.dotted import flatten, is_none_word, parse_assignments, parse_value, set_dotted, suggest
from archlab.errors import ConfigError, one_line
from archlab.fileio import load_yaml

__all__ = ["ConfigError", "apply_overrides", "check_choice", "check_positive", "check_probability", "config_diff",
           "dumps", "flatten", "from_dict", "one_line", "parse_value", "read_mapping", "replace", "to_dict"]


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ConfigError unless value is one of allowed, naming the field and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field}={value!r} is not allowed; expected one of {allowed}{hint}")


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


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(field: str, hint: Any, value: Any) -> Any:
    """Turn plain YAML/JSON data into the type a field declares (nested configs, tuples)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None or is_none_word(value):  # the one rule for "no value" (see archlab.dotted)
        if type(None) in args:
            return None
        if hint is str:
            return "none"
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field} must be a mapping of {hint.__name__} fields, got {value!r}")
        return from_dict(hint, value, prefix=field + ".")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
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
            raise ConfigError(f"unknown config key {prefix + key!r}{suggest(key, fields)}")
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


def config_diff(a: Any, b: Any) -> dict[str, Any]:
    """The ablation that turns config a into config b, as {dotted.key: new_value}."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    keys = list(fa) + [k for k in fb if k not in fa]
    return {k: fb.get(k) for k in keys if fa.get(k, object()) != fb.get(k, object())}


def apply_overrides(cfg: Any, overrides: Mapping[str, Any] | Iterable[str]) -> Any:
    """Return cfg with dotted-key overrides applied ({'block.norm': 'post'} or ['block.norm=post'])."""
    data = to_dict(cfg)
    for key, value in parse_assignments(overrides).items():
        set_dotted(data, key, value, strict=True)
    return from_dict(type(cfg), data)


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace that re-runs validation."""
    plain = {k: to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in changes.items()}
    return from_dict(type(cfg), {**to_dict(cfg), **plain})


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with a clear error for a missing or bad file. A path that does not
    exist but names a shipped run config ('fashion_mnist', 'configs/fashion_mnist.yaml') reads that one."""
    p = run_configs.resolve(path)
    if not p.is_file():
        hint = run_configs.hint() if Path(path).parent in (Path("."), Path("configs")) else ""
        raise ConfigError(f"config file {str(p)!r} does not exist{hint}")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else load_yaml(text)
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
