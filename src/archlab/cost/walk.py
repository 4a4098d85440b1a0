"""The per-layer walk: record every module call's shapes on a meta-device forward, then price each
module with a handler chosen by its type.

Shapes come from the forward itself (so strides, padding, pooling, cross-attention lengths and any
new module are seen as they really are); the MACs come from the closed forms in `analytic`. A meta
forward allocates nothing, so llama2-7b walks in about a second.

Adding a component: its cost handler `(name, module, calls, ctx) -> list[LayerCost]` lives in the
component's own file and is registered with it (`registry.register(..., cost=handler)`); torch's own
layers are priced here with `@handles(TorchClass)`, and a model's own module that is not a registered
component the same way, in its model file. A handler marked `@descends` prices the module *and* lets the
walk price its children (Attention: the children are the q/k/v/o Linear layers, the handler adds QKᵀ
and AV).
"""
from __future__ import annotations

import contextlib
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
from torch import nn

from archlab import registry
from archlab.cost.analytic import LayerCost, numel, rnn_macs_per_token


@dataclass
class Call:
    """Shapes seen by one forward call of a module (tensors only; other values kept if simple)."""

    args: list[Any]
    kwargs: dict[str, Any]
    out: Any


@dataclass
class WalkContext:
    """What handlers may consult: recorded calls, options, and the set of parameters already priced."""

    calls: dict[str, list[Call]]
    causal_half: bool = False
    cfg: Any = None
    seen: set[int] = field(default_factory=set)

    def take_params(self, module: nn.Module, recurse: bool = True) -> int:
        """Parameters of `module` not yet counted by an earlier row (tied weights count once)."""
        n = 0
        for p in module.parameters(recurse=recurse):
            if id(p) not in self.seen:
                self.seen.add(id(p))
                n += p.numel()
        return n


Handler = Callable[[str, nn.Module, list[Call], WalkContext], "list[LayerCost] | None"]
_BY_CLASS: dict[type, Handler] = {}


def descends(fn: Handler) -> Handler:
    """Mark a handler whose module's children are priced too (its own rows come after theirs)."""
    fn.descend = True  # type: ignore[attr-defined]
    return fn


def handles(*types: type) -> Callable[[Handler], Handler]:
    """Register a cost handler for module classes: torch's layers, and modules that are not registered
    components (registered components carry theirs: `registry.register(..., cost=...)`)."""

    for t in types:
        if not isinstance(t, type):
            raise TypeError(f"handles() takes module classes, not {t!r}: import the class (a registered component "
                            "passes its handler to registry.register(..., cost=...) instead)")

    def deco(fn: Handler) -> Handler:
        for t in types:
            _BY_CLASS[t] = fn
        return fn

    return deco


def handler_for(module: nn.Module) -> tuple[Handler, bool] | None:
    """(handler, descend) of the most specific class in the module's MRO: a registered component's cost, or
    a torch layer's handler from this file."""
    fn = registry.cost_for(type(module))
    if fn is None:
        fn = next((_BY_CLASS[c] for c in type(module).__mro__ if c in _BY_CLASS), None)
    return None if fn is None else (fn, getattr(fn, "descend", False))


# ---------------------------------------------------------------------------------------------
# shape recording
# ---------------------------------------------------------------------------------------------
def _shape(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return tuple(v.shape)
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return type(v)(_shape(x) for x in v)
    return type(v).__name__


@contextlib.contextmanager
def _meta_safe():
    """Meta tensors have no values: disable archlab's token-id range checks (int(ids.max())) meanwhile."""
    with contextlib.ExitStack() as stack:
        for name, mod in list(sys.modules.items()):
            if name.startswith("archlab.") and mod is not None and hasattr(mod, "check_token_ids") \
                    and name != "archlab.nn.embedding":
                stack.enter_context(mock.patch.object(mod, "check_token_ids", lambda *a, **k: None))
        yield


def record_calls(model: nn.Module, run: Callable[[nn.Module], Any]) -> dict[str, list[Call]]:
    """Run `run(model)` with forward hooks on every module; return name -> list of calls' shapes."""
    calls: dict[str, list[Call]] = defaultdict(list)
    handles_ = []
    for name, m in model.named_modules():
        def hook(mod, args, kwargs, out, _name=name):
            calls[_name].append(Call([_shape(a) for a in args], {k: _shape(v) for k, v in kwargs.items()},
                                     _shape(out)))
        handles_.append(m.register_forward_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad(), _meta_safe():
            run(model)
    finally:
        for h in handles_:
            h.remove()
    return dict(calls)


# ---------------------------------------------------------------------------------------------
# the walk
# ---------------------------------------------------------------------------------------------
def walk(model: nn.Module, calls: dict[str, list[Call]], *, causal_half: bool = False, cfg: Any = None
         ) -> list[LayerCost]:
    """Price every module: handled modules by their handler; unhandled leaves with parameters as a
    params-only row flagged 'no cost handler'; unhandled containers by walking their children."""
    ctx = WalkContext(calls=calls, causal_half=causal_half, cfg=cfg)
    rows: list[LayerCost] = []

    def visit(name: str, m: nn.Module) -> None:
        found = handler_for(m)
        if found is not None:
            fn, descend = found
            got = fn(name, m, calls.get(name, []), ctx)
            if descend:
                for child_name, child in m.named_children():
                    visit(f"{name}.{child_name}" if name else child_name, child)
            rows.extend(got or [])
            return
        own = ctx.take_params(m, recurse=False)
        if own:
            note = "no cost handler: parameters counted, MACs not" if name in calls else "not called in this forward"
            rows.append(LayerCost(name, type(m).__name__, params=own, note=note))
        for child_name, child in m.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return rows


# ---------------------------------------------------------------------------------------------
# handlers: torch layers
# ---------------------------------------------------------------------------------------------
def first_input(call: Call) -> tuple:
    """Shape of a call's first tensor argument (or of its `x` keyword)."""
    return call.args[0] if call.args and isinstance(call.args[0], tuple) else call.kwargs.get("x") or ()


def tokens(calls: list[Call]) -> list[tuple[int, int]]:
    """(B, T) of each call of a (B, T, D) -> (B, T, D) mixer."""
    return [tuple(first_input(c)[:2]) for c in calls if len(first_input(c)) == 3]


def linear_children(name: str, m: nn.Module, ctx: WalkContext) -> list[LayerCost]:
    """Rows of the direct nn.Linear children of `m` (for handlers of modules that apply other weights
    functionally)."""
    rows = []
    for child_name, child in m.named_children():
        if isinstance(child, nn.Linear):
            rows += linear_cost(f"{name}.{child_name}", child, ctx.calls.get(f"{name}.{child_name}", []), ctx)
    return rows


@handles(nn.Linear)
def linear_cost(name, m: nn.Linear, calls, ctx):
    macs = ins = outs = 0
    for c in calls:
        tokens = numel(first_input(c)) // m.in_features
        macs += tokens * m.in_features * m.out_features
        ins += tokens * m.in_features
        outs += tokens * m.out_features
    params = ctx.take_params(m)
    tied = m.weight.numel() if not params and calls else 0
    note = "weight tied (counted where first seen)" if tied else ""
    return [LayerCost(name, "linear", params, macs, outs, ins, note=note, extra={"tied": tied} if tied else {})]


@handles(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv(name, m: nn.modules.conv._ConvNd, calls, ctx):
    macs = ins = outs = 0
    k = numel(m.kernel_size)
    for c in calls:
        out = c.out
        # seed 003: N·M·E·F·R·S·C/groups
        macs += numel(out) * k * (m.in_channels // m.groups)
        ins += numel(first_input(c))
        outs += numel(out)
    if m.groups == m.in_channels and m.groups > 1:
        kind = "conv-depthwise"
    elif k == 1:
        kind = "conv-pointwise"
    else:
        kind = "conv"
    dil = m.dilation if any(d != 1 for d in m.dilation) else None
    note = f"k={tuple(m.kernel_size)} s={tuple(m.stride)}" + (f" dil={tuple(dil)}" if dil else "") + \
        (f" groups={m.groups}" if m.groups > 1 else "")
    return [LayerCost(name, kind, ctx.take_params(m), macs, outs, ins, note=note)]


@handles(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def _pool(name, m, calls, ctx):
    ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * (len(calls[0].out) - 2 if calls
                                                                                   else 2)
    ops = sum(numel(c.out) * numel(ks) for c in calls)  # one compare/add per window element
    return [LayerCost(name, "pool", 0, 0, sum(numel(c.out) for c in calls), sum(numel(first_input(c)) for c in calls),
                      ops=ops, note=f"{type(m).__name__} k={ks}: comparisons/adds, not MACs")]


@handles(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
def _adaptive_pool(name, m, calls, ctx):
    ins = sum(numel(first_input(c)) for c in calls)
    return [LayerCost(name, "pool", 0, 0, sum(numel(c.out) for c in calls), ins, ops=ins,
                      note="global pooling: adds, not MACs")]


@handles(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
def norm_cost(name, m, calls, ctx):
    n = sum(numel(first_input(c)) for c in calls)
    per = 2 if "BatchNorm" in type(m).__name__ else 5  # BN at inference: scale+shift (foldable into conv)
    return [LayerCost(name, "norm", ctx.take_params(m), 0, n, n, ops=per * n,
                      note="elementwise: not MACs")]


@handles(nn.Embedding)
def embedding_cost(name, m, calls, ctx):
    outs = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
    return [LayerCost(name, "embedding", ctx.take_params(m), 0, outs, note="lookup (gather): 0 MACs")]


@handles(nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softmax, nn.ReLU6, nn.Hardswish, nn.LeakyReLU)
def _activation(name, m, calls, ctx):
    n = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
    return [LayerCost(name, "activation", 0, 0, n, n, ops=n, note="elementwise: not MACs")]


@handles(nn.Dropout, nn.Identity, nn.Flatten)
def _free(name, m, calls, ctx):
    return []


@handles(nn.RNN, nn.LSTM, nn.GRU)
def _torch_rnn(name, m: nn.RNNBase, calls, ctx):
    kind = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}[type(m).__name__]
    dirs = 2 if m.bidirectional else 1
    macs = outs = 0
    for c in calls:
        x = first_input(c)
        tokens = numel(x) // m.input_size
        d_in = m.input_size
        for _ in range(m.num_layers):
            macs += dirs * tokens * rnn_macs_per_token(kind, d_in, m.hidden_size)
            d_in = m.hidden_size * dirs
        outs += tokens * m.hidden_size * dirs
    return [LayerCost(name, kind, ctx.take_params(m), macs, outs,
                      note="g·H·(D_in+H) per token, g=1/3/4 gates; gate nonlinearities in ops",
                      extra={"state_elems": m.hidden_size * dirs * m.num_layers * (2 if kind == "lstm" else 1)})]


@handles(nn.ModuleDict, nn.ModuleList, nn.Sequential)
@descends
def container_cost(name, m, calls, ctx):
    """Containers: their Linear/conv children carry the cost; own parameters (if any) are listed."""
    own = ctx.take_params(m, recurse=False)
    return [LayerCost(name, type(m).__name__, own, note="own parameters")] if own else []
