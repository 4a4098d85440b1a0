"""One registry: kind -> name -> entry, for components, models, presets and tasks.

A component (kind "mixer", "position", "norm", "ffn") registers its module together with its frozen
config class, where that config lives in the model config (`section`, a dotted path such as
"mixer.ssm"), and its cost handler — one decorator in the component's own file:

    @register("mixer", "mamba", config=SSMConfig, section="mixer.ssm", cost=mamba_cost)
    class Mamba(nn.Module):
        def __init__(self, cfg: SSMConfig, ctx: Context) -> None: ...

Everything else (the kinds a config accepts, did-you-mean errors, the model shell, the cost walk,
the tests that iterate `names(kind)`) reads this table, so a new component is one new file.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archlab.config import ConfigError, check_choice

COMPONENT_KINDS = ("mixer", "position", "norm", "ffn", "embedding")


@dataclass(frozen=True)
class Context:
    """What a component may read besides its own config: sizes and shared parts, never the model config."""

    d_model: int
    layer_index: int = 0
    n_layers: int = 1
    max_len: int = 1024  # positions the model supports (max_seq_len)
    head_dim: int = 0  # attention head size (rotary positions)
    dropout: float = 0.0  # the block's dropout on sub-layer outputs (FFN hidden)
    rope: Any = None  # the model's shared rotary table, for mixers that attend
    causal: bool = True  # the stack's self-mixing sees only the past (a decoder), or every position (an encoder)


@dataclass(frozen=True)
class Entry:
    """One registered thing: how to build it, its config class and section, its cost handler."""

    builder: Callable[..., Any]
    config: type | None = None
    section: str | None = None
    cost: Callable[..., Any] | None = None


_REGISTRY: dict[str, dict[str, Entry]] = {}
_COST_BY_CLASS: dict[type, Callable[..., Any]] = {}


def register(kind: str, name: str, *, config: type | None = None, section: str | None = None,
             cost: Callable[..., Any] | None = None) -> Callable[[Any], Any]:
    """Decorator: make `obj` buildable as registry.build(kind, name, ...); a class also gets `cost`."""

    def deco(obj: Any) -> Any:
        table = _REGISTRY.setdefault(kind, {})
        if name in table and table[name].builder is not obj:
            raise KeyError(f"{kind} {name!r} is registered twice")
        table[name] = Entry(obj, config, section, cost)
        if cost is not None and isinstance(obj, type):
            _COST_BY_CLASS[obj] = cost
        return obj

    return deco


def names(kind: str) -> list[str]:
    """Registered names of one kind, sorted."""
    _load(kind)
    return sorted(_REGISTRY.get(kind, {}))


def entries(kind: str) -> dict[str, Entry]:
    """name -> Entry of one kind, in registration order."""
    _load(kind)
    return dict(_REGISTRY.get(kind, {}))


def entry(kind: str, name: str) -> Entry:
    """The entry registered under (kind, name); a clear error with a suggestion otherwise."""
    _load(kind)
    table = _REGISTRY.get(kind, {})
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}{_did_you_mean(name, table)} (known: {sorted(table)})")
    return table[name]


def get(kind: str, name: str) -> Callable[..., Any]:
    """The builder registered under (kind, name)."""
    return entry(kind, name).builder


def build(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the builder registered under (kind, name)."""
    return get(kind, name)(*args, **kwargs)


def check_name(field: str, kind: str, value: Any) -> None:
    """ConfigError naming `field` unless `value` is a registered `kind` (the choices and a did-you-mean)."""
    check_choice(field, value, names(kind))


def check_config(cfg: Any, section: str) -> None:
    """ConfigError naming `section.field` for any value outside its field's `Literal[...]` choices
    (also element-wise for `tuple[Literal[...], ...]`), with a did-you-mean."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        hint, value = hints[f.name], getattr(cfg, f.name)
        if typing.get_origin(hint) is typing.Literal:
            check_choice(f"{section}.{f.name}", value, typing.get_args(hint))
        elif typing.get_origin(hint) is tuple and typing.get_origin(typing.get_args(hint)[0]) is typing.Literal:
            for i, v in enumerate(value):
                check_choice(f"{section}.{f.name}[{i}]", v, typing.get_args(typing.get_args(hint)[0]))


def cost_for(module_class: type) -> Callable[..., Any] | None:
    """The cost handler registered with the most specific class in `module_class`'s MRO, if any."""
    for cls in module_class.__mro__:
        if cls in _COST_BY_CLASS:
            return _COST_BY_CLASS[cls]
    return None


def _did_you_mean(name: Any, options) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_loaded: set[str] = set()


def _load(kind: str) -> None:
    """Import the modules that register things, once, so lookups see every builder.

    Components live in archlab.nn only (which imports nothing above it); models, presets and tasks need more.
    """
    import importlib

    mods = ("archlab.nn",) if kind in COMPONENT_KINDS else ("archlab.nn", "archlab.models", "archlab.tasks")
    for mod in mods:
        if mod not in _loaded:
            _loaded.add(mod)
            importlib.import_module(mod)
