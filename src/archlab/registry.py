"""One registry: kind -> name -> builder, for components, models, presets and config classes."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from archlab.config import ConfigError

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make `fn` buildable as registry.build(kind, name, ...)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        table = _REGISTRY.setdefault(kind, {})
        if name in table and table[name] is not fn:
            raise KeyError(f"{kind} {name!r} is registered twice")
        table[name] = fn
        return fn

    return deco


def names(kind: str) -> list[str]:
    """Registered names of one kind, sorted."""
    _load_all()
    return sorted(_REGISTRY.get(kind, {}))


def get(kind: str, name: str) -> Callable[..., Any]:
    """The builder registered under (kind, name); a clear error with suggestions otherwise."""
    _load_all()
    table = _REGISTRY.get(kind, {})
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {kind} {name!r}{hint} (known: {sorted(table)})")
    return table[name]


def build(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the builder registered under (kind, name)."""
    return get(kind, name)(*args, **kwargs)


_loaded = False


def _load_all() -> None:
    """Import the modules that register things, once, so lookups see every builder."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in ("archlab.nn", "archlab.models", "archlab.tasks"):
        importlib.import_module(mod)
