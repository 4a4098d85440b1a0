"""The per-layer walk: record every module call's shapes on a meta-device forward, then price each
module with a handler chosen by its type.

Shapes come from the forward itself (so strides, padding, pooling, cross-attention lengths and any
new module are seen as they really are); the MACs come from the closed forms in `analytic`. A meta
forward allocates nothing, so llama2-7b walks in about a second.

Adding a component: decorate a function `(name, module, calls, ctx) -> list[LayerCost] | None` with
`@handles(ClassOrClassName, ...)`. Return rows (children are then skipped), or None and set
`ctx.descend = True` semantics via `handles(..., descend=True)` to price the module *and* walk into
its children (Attention: the children are the q/k/v/o Linear layers, the handler adds QKᵀ and AV).
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

from archlab.cost.analytic import (
    LayerCost,
    attention_core_macs,
    numel,
    rnn_macs_per_token,
    ssm_scan_macs_per_token,
    ssm_state_elems,
)


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
_BY_CLASS: dict[type, tuple[Handler, bool]] = {}
_BY_NAME: dict[str, tuple[Handler, bool]] = {}


def handles(*types: type | str, descend: bool = False) -> Callable[[Handler], Handler]:
    """Register a cost handler for module classes (or class names, for modules that may not exist yet)."""

    def deco(fn: Handler) -> Handler:
        for t in types:
            if isinstance(t, str):
                _BY_NAME[t] = (fn, descend)
            else:
                _BY_CLASS[t] = (fn, descend)
        return fn

    return deco


def handler_for(module: nn.Module) -> tuple[Handler, bool] | None:
    """The handler of the most specific class in the module's MRO."""
    for cls in type(module).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
        if cls.__name__ in _BY_NAME:
            return _BY_NAME[cls.__name__]
    return None


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
def _first(call: Call) -> tuple:
    return call.args[0] if call.args and isinstance(call.args[0], tuple) else call.kwargs.get("x") or ()


@handles(nn.Linear)
def _linear(name, m: nn.Linear, calls, ctx):
    macs = ins = outs = 0
    for c in calls:
        tokens = numel(_first(c)) // m.in_features
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
        ins += numel(_first(c))
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
    return [LayerCost(name, "pool", 0, 0, sum(numel(c.out) for c in calls), sum(numel(_first(c)) for c in calls),
                      ops=ops, note=f"{type(m).__name__} k={ks}: comparisons/adds, not MACs")]


@handles(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
def _adaptive_pool(name, m, calls, ctx):
    ins = sum(numel(_first(c)) for c in calls)
    return [LayerCost(name, "pool", 0, 0, sum(numel(c.out) for c in calls), ins, ops=ins,
                      note="global pooling: adds, not MACs")]


@handles(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, "RMSNorm")
def _norm(name, m, calls, ctx):
    n = sum(numel(_first(c)) for c in calls)
    per = 2 if "BatchNorm" in type(m).__name__ else 5  # BN at inference: scale+shift (foldable into conv)
    return [LayerCost(name, "norm", ctx.take_params(m), 0, n, n, ops=per * n,
                      note="elementwise: not MACs")]


@handles(nn.Embedding, "TokenEmbedding", "LearnedPositions")
def _embedding(name, m, calls, ctx):
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
        x = _first(c)
        tokens = numel(x) // m.input_size
        d_in = m.input_size
        for _ in range(m.num_layers):
            macs += dirs * tokens * rnn_macs_per_token(kind, d_in, m.hidden_size)
            d_in = m.hidden_size * dirs
        outs += tokens * m.hidden_size * dirs
    return [LayerCost(name, kind, ctx.take_params(m), macs, outs,
                      note="g·H·(D_in+H) per token, g=1/3/4 gates; gate nonlinearities in ops",
                      extra={"state_elems": m.hidden_size * dirs * m.num_layers * (2 if kind == "lstm" else 1)})]


# ---------------------------------------------------------------------------------------------
# handlers: archlab components
# ---------------------------------------------------------------------------------------------
@handles("Attention", descend=True)
def _attention(name, m, calls, ctx):
    """q/k/v/o projections are its Linear children; this row adds QKᵀ and AV."""
    macs = outs = ops = ins = 0
    causal_any = cross = False
    for c in calls:
        b, tq = _first(c)[:2]
        mem = c.kwargs.get("memory")
        cross |= isinstance(mem, tuple)
        tk = mem[1] if isinstance(mem, tuple) else tq + int(c.kwargs.get("pos") or 0)
        causal = not isinstance(mem, tuple) and bool(c.kwargs.get("is_causal") or isinstance(c.kwargs.get("mask"),
                                                                                             tuple))
        causal_any |= causal
        macs += attention_core_macs(b, m.n_heads, tq, tk, m.head_dim, ctx.causal_half and causal)
        ops += 5 * b * m.n_heads * tq * tk  # scale, mask, exp, sum, divide
        outs += b * tq * m.n_heads * m.head_dim
        ins += b * (tq * m.n_heads + 2 * tk * m.n_kv_heads) * m.head_dim  # Q, K, V read once (fused kernel)
    half = " (causal: half counted)" if ctx.causal_half and causal_any else (" (causal: full square counted)"
                                                                            if causal_any else "")
    return [LayerCost(f"{name}.core", "attn-core", 0, macs, outs, ins, ops=ops,
                      note=f"QKᵀ+AV: 2·B·H·Tq·Tk·d, H={m.n_heads} d={m.head_dim}{half}; softmax in ops",
                      extra={"heads": m.n_heads, "kv_heads": m.n_kv_heads, "head_dim": m.head_dim, "cross": cross,
                             "encoder": name.startswith("encoder.")})]


@handles("FeedForward", "Block", "Stack", "ModuleDict", "ModuleList", "Sequential", descend=True)
def _container(name, m, calls, ctx):
    """Containers: their Linear/conv children carry the cost; own parameters (if any) are listed."""
    own = ctx.take_params(m, recurse=False)
    return [LayerCost(name, type(m).__name__, own, note="own parameters")] if own else []


@handles("RotaryEmbedding", "SinusoidalPositions")
def _no_param_position(name, m, calls, ctx):
    n = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
    return [LayerCost(name, "position", ctx.take_params(m), 0, 0, ops=3 * n, note="rotation/addition: not MACs")]


# ---------------------------------------------------------------------------------------------
# handlers: sequence mixers (seed 000 Mamba, seed 001 baselines)
# ---------------------------------------------------------------------------------------------
def _tokens(calls: list[Call]) -> list[tuple[int, int]]:
    """(B, T) of each call of a (B, T, D) -> (B, T, D) mixer."""
    return [tuple(_first(c)[:2]) for c in calls if len(_first(c)) == 3]


def _children_linear(name, m, ctx) -> list[LayerCost]:
    rows = []
    for child_name, child in m.named_children():
        if isinstance(child, nn.Linear):
            rows += _linear(f"{name}.{child_name}", child, ctx.calls.get(f"{name}.{child_name}", []), ctx)
    return rows


@handles("Mamba")
def _mamba(name, m, calls, ctx):
    """Mamba block: in/x/dt/out projections (Linear), causal depthwise conv1d, selective scan.

    The conv is applied functionally (F.conv1d on the module's weight), so it is priced here from T:
    B·T·E·K MACs. The scan per token and channel and state: the update h ← exp(ΔA)⊙h + (ΔB)x is one
    MAC (an elementwise addcmul FlopCounterMode cannot see) and the readout y = C·h one MAC (a matmul
    it does see); exp(ΔA), ΔB·x and the gate are `ops`.
    """
    rows = _children_linear(name, m, ctx)
    E, N, K = m.d_inner, m.d_state, m.d_conv
    bt = sum(b * t for b, t in _tokens(calls))
    if m.conv1d is not None:
        rows.append(LayerCost(f"{name}.conv1d", "conv-depthwise", ctx.take_params(m.conv1d), bt * E * K, bt * E,
                              bt * E, note=f"causal depthwise conv1d k={K}: B·T·E·K"))
    half = ssm_scan_macs_per_token(E, N) // 2
    own = ctx.take_params(m, recurse=False)
    rows.append(LayerCost(f"{name}.scan.update", "ssm-scan", own, bt * half, 0, bt * E, ops=3 * bt * E * N,
                          counter_visible=False,
                          note=f"h←exp(ΔA)⊙h+ΔBx: B·T·E·N, E={E} N={N}; elementwise, invisible to the counter",
                          extra={"state_elems": ssm_state_elems(E, N, K if m.conv1d is not None else 1)}))
    rows.append(LayerCost(f"{name}.scan.readout", "ssm-scan", 0, bt * half, bt * E, ops=bt * E * (1 + int(m.gate)),
                          note="y=C·h (+Dx, gate): B·T·E·N"))
    return rows


@handles("RecurrentMixer")
def _recurrent_mixer(name, m, calls, ctx):
    """RNN/LSTM/GRU mixer: g·H·(D+H) MACs per token (either path: torch cell or the reference loop) + out_proj."""
    cell = m.cell
    bt = sum(b * t for b, t in _tokens(calls))
    rows = [LayerCost(f"{name}.cell", m.kind, ctx.take_params(cell), bt * rnn_macs_per_token(m.kind, cell.input_size,
                                                                                         m.hidden),
                      bt * m.hidden, bt * cell.input_size,
                      note=f"{m.kind}: g·H·(D+H) per token, g={ {'rnn': 1, 'gru': 3, 'lstm': 4}[m.kind] }",
                      extra={"state_elems": m.hidden * (2 if m.kind == "lstm" else 1)})]
    return rows + _children_linear(name, m, ctx)


@handles("DilatedCausalConv")
def _dilated_conv(name, m, calls, ctx):
    """Causal dilated conv (applied functionally): B·T·D·D·K MACs, then out_proj."""
    conv = m.conv
    bt = sum(b * t for b, t in _tokens(calls))
    k = conv.kernel_size[0]
    rows = [LayerCost(f"{name}.conv", "conv-dilated", ctx.take_params(conv),
                      bt * conv.out_channels * conv.in_channels * k, bt * conv.out_channels, bt * conv.in_channels,
                      note=f"k={k} dilation={m.dilation}: B·T·D·D·K",
                      extra={"state_elems": conv.in_channels * m.context})]
    return rows + _children_linear(name, m, ctx)


@handles("TokenMixing")
def _token_mixing(name, m, calls, ctx):
    """Learned T×T position mixing: y_t = Σ_s W[t,s] x_s computed as a dense (T×S)·(S×D) matmul: B·T·S·D."""
    macs = outs = 0
    for c in calls:
        b, t, d = _first(c)
        s = t + int(c.kwargs.get("pos") or 0)
        macs += b * t * s * d
        outs += b * t * d
    rows = [LayerCost(f"{name}.mix", "token-mixing", ctx.take_params(m, recurse=False), macs, outs,
                      note="dense W(T×S)·X(S×D) (the causal mask zeroes W, the matmul still runs): B·T·S·D")]
    return rows + _children_linear(name, m, ctx)
