"""Whole-model cost: totals of the per-layer walk, training/inference FLOPs per token, KV-cache bytes,
arithmetic intensity; and the per-layer table that `archlab cost` and `archlab demo` print.

Training FLOPs per token, the convention (Kaplan et al. 2020 §2.1; PaLM app. B; nanoGPT's estimate_mfu):
    6·N + 12·L·H·d_head·T
where N counts the parameters that take part in a matmul per token (every parameter except lookup-only
embedding tables: position/segment tables and an *untied* input embedding; a tied embedding counts once,
as the LM head), 6 = 2 FLOPs per MAC × (1 forward + 2 backward), and 12·L·H·d·T is the attention QKᵀ and
AV over T keys (full square, no causal halving), ×3 for forward+backward. We also report the exact
3 × forward FLOPs from the walk, which differs only by biases/norm parameters inside N.
"""
from __future__ import annotations

import contextlib
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import nn

from archlab.cost.analytic import LayerCost, dtype_bytes
from archlab.cost.walk import record_calls, walk
from archlab.errors import ConfigError, MissingFileError

DEFAULT_MAX_SEQ = 2048  # default T when --seq-len is not given: min(model max_seq_len, this)


def resolve_config(spec: Any) -> Any:
    """A model config from a preset name, a YAML/JSON path, a config object, or a model with `.cfg`."""
    from archlab.models import model_config_from_dict, preset

    if isinstance(spec, nn.Module):
        return getattr(spec, "cfg", None)
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if p.suffix.lower() in (".yaml", ".yml", ".json") or p.exists():
            if not p.exists():
                raise MissingFileError(f"config file {str(p)!r} does not exist")
            from archlab.config import read_mapping

            data = read_mapping(p)
            data = data.get("model", data) if isinstance(data.get("model"), dict) else data
            return model_config_from_dict(data)
        return preset(str(spec))
    return spec


def is_sequence_config(cfg: Any) -> bool:
    return hasattr(cfg, "vocab_size") and hasattr(cfg, "d_model")


def is_image_config(cfg: Any) -> bool:
    return hasattr(cfg, "image_size") and hasattr(cfg, "in_channels")


@dataclass
class Workload:
    """What one forward processes: batch and sequence length, or batch and image size."""

    batch: int = 1
    seq_len: int | None = None
    image_size: int | None = None

    def tokens(self) -> int:
        """Tokens (sequence models) or images (CNNs) per forward."""
        return self.batch * (self.seq_len or 1)


def check_count(name: str, value: Any) -> None:
    """A size argument that is given (not None) must be an integer ≥ 1: 0 is refused, never read as the default."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
        raise ConfigError(f"{name} must be an integer ≥ 1 (or None for the default), got {value!r}")


def workload_for(cfg: Any, batch: int = 1, seq_len: int | None = None, image_size: int | None = None) -> Workload:
    """Fill defaults: T = min(max_seq_len, 2048) for sequence models; the config's image size for CNNs."""
    check_count("batch", batch)
    check_count("seq_len", seq_len)
    check_count("image_size", image_size)
    if is_sequence_config(cfg):
        t = min(cfg.max_seq_len, DEFAULT_MAX_SEQ) if seq_len is None else seq_len
        if t > cfg.max_seq_len:
            raise ConfigError(f"seq_len={t} is longer than the model's max_seq_len={cfg.max_seq_len}")
        return Workload(batch, t, None)
    if is_image_config(cfg):
        return Workload(batch, None, cfg.image_size if image_size is None else image_size)
    return Workload(batch, seq_len, image_size)


def example_run(cfg: Any, wl: Workload, device: str | torch.device = "meta"):
    """A callable model -> output that runs one forward on inputs shaped by the workload."""
    if is_sequence_config(cfg):
        ids = torch.zeros(wl.batch, wl.seq_len, dtype=torch.long, device=device)
        if getattr(cfg, "shape", "decoder") == "encoder_decoder":
            return lambda m: m(ids, decoder_input_ids=ids)
        head = getattr(cfg, "head", None)
        if head is not None and not head.lm:  # BERT without the MLM head: pooler / classifier / hidden states
            if head.n_classes:
                return lambda m: m.classify(ids)
            if head.pooler:
                return lambda m: m.pooled(ids)
            return lambda m: m.hidden_states(ids)
        return lambda m: m(ids)
    if is_image_config(cfg):
        x = torch.zeros(wl.batch, cfg.in_channels, wl.image_size, wl.image_size, device=device)
        return lambda m: m(x)
    raise ConfigError(f"don't know how to build an example input for {type(cfg).__name__}; "
                      "pass a sequence config (vocab_size, d_model) or an image config (image_size, in_channels)")


_INIT_FNS = ("normal_", "uniform_", "zeros_", "ones_", "constant_", "trunc_normal_", "kaiming_normal_",
             "kaiming_uniform_", "xavier_normal_", "xavier_uniform_", "orthogonal_")


def meta_model(cfg: Any) -> nn.Module:
    """The model built on the meta device: shapes only, nothing allocated; nn.init calls are skipped
    (on meta they only cost time: each runs through Python decompositions)."""
    from archlab.models import build_model

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.device("meta"))
        for fn in _INIT_FNS:
            if hasattr(nn.init, fn):
                stack.enter_context(mock.patch.object(nn.init, fn, lambda t, *a, **k: t))
        return build_model(cfg)


@dataclass
class ModelCost:
    """Totals of one forward (batch × sequence or batch × image), per-token figures, memory, intensity."""

    name: str
    workload: Workload
    dtype: str
    rows: list[LayerCost]
    params: int
    params_lookup: int  # lookup-only embedding parameters (no matmul per token)
    macs: int  # one forward over the whole workload
    weight_bytes: float
    act_bytes: float  # Σ output activations of priced layers (a lower bound on what backward keeps)
    seq: dict[str, Any] = field(default_factory=dict)  # sequence-model figures (per token)

    @property
    def flops(self) -> int:
        """Forward FLOPs = 2 × MACs."""
        return 2 * self.macs

    @property
    def params_dense(self) -> int:
        """N of the 6N convention: parameters that take part in a matmul per token."""
        return self.params - self.params_lookup

    @property
    def intensity(self) -> float:
        """Forward arithmetic intensity: FLOPs / (weight bytes + Σ layer input+output bytes)."""
        b = dtype_bytes(self.dtype)
        moved = self.weight_bytes + sum(r.in_elems + r.out_elems for r in self.rows) * b
        return self.flops / moved if moved else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "batch": self.workload.batch, "seq_len": self.workload.seq_len,
            "image_size": self.workload.image_size, "dtype": self.dtype, "params": self.params,
            "params_dense": self.params_dense, "macs": self.macs, "flops": self.flops,
            "weight_bytes": self.weight_bytes, "activation_bytes": self.act_bytes,
            "arithmetic_intensity": self.intensity, **self.seq,
            "layers": [r.to_dict() for r in self.rows],
        }


def _attn_rows(rows: list[LayerCost]) -> tuple[list[LayerCost], list[LayerCost]]:
    core = [r for r in rows if r.kind == "attn-core"]
    return [r for r in core if not r.extra.get("cross")], [r for r in core if r.extra.get("cross")]


def _sequence_figures(cfg: Any, mc: ModelCost, context: int | None) -> dict[str, Any]:
    """Per-token figures of a sequence model at training length T and inference context t.

    Per token = per target position (B·T tokens per forward; an encoder-decoder's source has S = T too).
    """
    wl = mc.workload
    T = wl.seq_len
    t = T if context is None else context
    tokens = wl.tokens()
    self_core, cross_core = _attn_rows(mc.rows)
    # Σ over self-attention layers of H·d_head (the L·H·d of 12·L·H·d·T; GQA shares K/V, not Q heads)
    hd_sum = sum(r.extra["heads"] * r.extra["head_dim"] for r in self_core)
    b = dtype_bytes(mc.dtype)
    n = mc.params_dense
    fwd_per_token = mc.macs / tokens
    d: dict[str, Any] = {
        "tokens": tokens,
        "forward_flops_per_token": 2 * fwd_per_token,
        "train_flops_per_token_6N": 6 * n + 12 * hd_sum * T,
        "train_flops_per_token_6N_causal": 6 * n + 6 * hd_sum * T,
        "train_flops_per_token_exact": 3 * 2 * fwd_per_token,
        "train_flops_convention": "6·N + 12·L·H·d_head·T (N = params in a matmul per token; "
                                  "attention full square, forward + 2× backward)",
    }
    if getattr(cfg, "shape", "decoder") == "encoder":
        return d  # no token-by-token generation, no KV cache
    # generation runs the decoder side only (an encoder-decoder's encoder runs once per source): the rows
    # under the model's `encoder` stack are left out
    dec_rows = [r for r in mc.rows if not r.name.startswith("encoder.")]
    dec_self = [r for r in self_core if not r.name.startswith("encoder.")]
    dec_hd = sum(r.extra["heads"] * r.extra["head_dim"] for r in dec_self)
    kv_sum = sum(r.extra["kv_heads"] * r.extra["head_dim"] for r in dec_self)
    # linear layers, LM head, cross-attention over the fixed source, SSM scans, RNN gates ... per token
    other = (sum(r.macs for r in dec_rows) - sum(r.macs for r in dec_self)) / tokens
    state_elems = sum(r.extra.get("state_elems", 0) for r in mc.rows)
    d.update({
        "inference_context": t,
        # one new token at context t with a KV cache: every matmul once, attention over t cached keys
        "infer_flops_per_token_kv_cache": 2 * (other + 2 * dec_hd * t),
        # no cache: re-run the forward over all t tokens (LM head on every position, as a plain forward does)
        "infer_flops_per_token_no_cache": 2 * (t * other + 2 * dec_hd * t * t),
        "kv_cache_bytes_per_token": 2 * kv_sum * b,
        "kv_cache_bytes_per_sequence": 2 * kv_sum * b * t,
        "recurrent_state_bytes_per_sequence": state_elems * b,
    })
    # decode step at this batch: weights read once, each sequence's cache/state read once
    step_flops = wl.batch * d["infer_flops_per_token_kv_cache"]
    per_seq = d["kv_cache_bytes_per_sequence"] + d["recurrent_state_bytes_per_sequence"]
    step_bytes = mc.weight_bytes + wl.batch * per_seq
    d["decode_step_flops"] = step_flops
    d["decode_step_bytes"] = step_bytes
    d["decode_intensity"] = step_flops / step_bytes if step_bytes else 0.0
    if cross_core:
        d["cross_attention_kv_bytes_per_source_token"] = 2 * sum(
            r.extra["kv_heads"] * r.extra["head_dim"] for r in cross_core) * b
    return d


def model_cost(model_or_cfg: Any, batch: int = 1, seq_len: int | None = None, image_size: int | None = None,
               dtype: str = "bf16", *, causal_half: bool = False, context: int | None = None,
               wrap_forward=None) -> ModelCost:
    """Walk the model on the meta device for one forward of (batch, seq_len | image_size) and total it.

    wrap_forward(model, run): optional, runs the recorded forward inside a context (crosscheck's counter)."""
    dtype_bytes(dtype)
    check_count("context", context)
    cfg = resolve_config(model_or_cfg)
    if cfg is None:
        raise ConfigError("model_cost needs a config, a preset name, a config file, or a model with a .cfg")
    wl = workload_for(cfg, batch, seq_len, image_size)
    model = meta_model(cfg)
    run = example_run(cfg, wl)
    if wrap_forward is not None:
        inner = run
        run = lambda m: wrap_forward(m, inner)  # noqa: E731
    calls = record_calls(model, run)
    rows = walk(model, calls, causal_half=causal_half, cfg=cfg)
    params = sum(r.params for r in rows)
    lookup = sum(r.params for r in rows if r.kind == "embedding")
    lookup -= sum(r.extra.get("tied", 0) for r in rows)  # a tied table is also the LM head's matmul
    mc = ModelCost(
        name=getattr(cfg, "name", type(cfg).__name__), workload=wl, dtype=dtype, rows=rows, params=params,
        params_lookup=lookup, macs=sum(r.macs for r in rows), weight_bytes=params * dtype_bytes(dtype),
        act_bytes=sum(r.out_elems for r in rows) * dtype_bytes(dtype),
    )
    if is_sequence_config(cfg):
        mc.seq = _sequence_figures(cfg, mc, context)
    return mc


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------
def human(x: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes, 3 significant digits)."""
    for div, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{p}{unit}"
    return f"{x:.3g}{unit}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x)}{unit}"


def human_bytes(x: float) -> str:
    """Bytes in binary units (KiB, MiB, GiB)."""
    for div, p in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= div:
            return f"{x / div:.3g} {p}"
    return f"{x:.0f} B"


_BLOCK = re.compile(r"(\.blocks\.|^layers\.|\.layers\.|^features\.)(\d+)(?=\.|$)")


def collapse_blocks(rows: list[LayerCost]) -> list[tuple[str, int, LayerCost]]:
    """Group rows of repeated blocks (`blocks.0..N`) into one line each: (name pattern, count, summed row)."""
    groups: dict[str, list[LayerCost]] = {}
    order: list[str] = []
    for r in rows:
        key = _BLOCK.sub(lambda m: f"{m.group(1)}*", r.name)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    out = []
    for key in order:
        rs = groups[key]
        if len(rs) == 1:
            out.append((rs[0].name, 1, rs[0]))
            continue
        s = LayerCost(key, rs[0].kind, sum(r.params for r in rs), sum(r.macs for r in rs),
                      sum(r.out_elems for r in rs), sum(r.in_elems for r in rs), sum(r.ops for r in rs),
                      all(r.counter_visible for r in rs), rs[0].note)
        out.append((key, len(rs), s))
    return out


def cost_table(model_or_cfg: Any = None, batch: int = 1, seq_len: int | None = None, image_size: int | None = None,
               dtype: str = "bf16", *, mc: ModelCost | None = None, collapse: bool = True,
               causal_half: bool = False) -> str:
    """The per-layer table with totals, as text (what `archlab cost` prints)."""
    mc = mc or model_cost(model_or_cfg, batch, seq_len, image_size, dtype, causal_half=causal_half)
    wl = mc.workload
    shape = f"batch={wl.batch}" + (f" T={wl.seq_len}" if wl.seq_len else "") + \
        (f" image={wl.image_size}²" if wl.image_size else "")
    lines = [f"{mc.name}: one forward, {shape}, weights in {mc.dtype}  (1 MAC = 1 multiply-add, FLOPs = 2·MACs)"]
    head = f"{'layer':<46} {'×':>3} {'kind':<15} {'params':>11} {'MACs':>9} {'%MACs':>6} {'out act':>8} {'AI':>7}  note"
    lines += [head, "-" * len(head)]
    total = max(mc.macs, 1)
    items = collapse_blocks(mc.rows) if collapse else [(r.name, 1, r) for r in mc.rows]
    for name, count, r in items:
        if not (r.params or r.macs or r.ops) or (collapse and r.kind == "activation"):
            continue
        nm = name if len(name) <= 46 else "…" + name[-45:]
        lines.append(f"{nm:<46} {count:>3} {r.kind:<15} {r.params:>11,} {human(r.macs):>9} "
                     f"{100 * r.macs / total:>5.1f}% {human(r.out_elems):>8} {r.intensity(mc.dtype):>7.1f}  {r.note}")
    lines.append("-" * len(head))
    lines.append(f"total params {mc.params:,}  (matmul N = {mc.params_dense:,}; lookup tables {mc.params_lookup:,})")
    lines.append(f"forward MACs {mc.macs:,} = {human(mc.macs)}  ->  FLOPs {human(mc.flops)}")
    lines.append(f"weights {human_bytes(mc.weight_bytes)} ({mc.dtype}); output activations of priced layers "
                 f"{human_bytes(mc.act_bytes)}; arithmetic intensity {mc.intensity:.1f} FLOP/B")
    s = mc.seq
    if s:
        lines.append(f"per token: forward {human(s['forward_flops_per_token'])}FLOPs; training "
                     f"6N+12·L·H·d·T = {human(s['train_flops_per_token_6N'])}FLOPs "
                     f"(exact 3×forward {human(s['train_flops_per_token_exact'])}FLOPs; "
                     f"causal-halved {human(s['train_flops_per_token_6N_causal'])}FLOPs)")
    if s.get("inference_context"):
        lines.append(f"inference at context t={s['inference_context']}: with KV cache "
                     f"{human(s['infer_flops_per_token_kv_cache'])}FLOPs/token, without "
                     f"{human(s['infer_flops_per_token_no_cache'])}FLOPs/token")
        lines.append(f"KV cache {human_bytes(s['kv_cache_bytes_per_token'])}/token "
                     f"({human_bytes(s['kv_cache_bytes_per_sequence'])} per sequence of {s['inference_context']})"
                     + (f"; recurrent state {human_bytes(s['recurrent_state_bytes_per_sequence'])}/sequence"
                        if s["recurrent_state_bytes_per_sequence"] else "")
                     + f"; decode-step intensity {s['decode_intensity']:.1f} FLOP/B")
    hidden = [r for r in mc.rows if r.note.startswith("no cost handler")]
    if hidden:
        lines.append(f"warning: {len(hidden)} module(s) without a cost handler (MACs not counted): "
                     + ", ".join(sorted({r.kind for r in hidden})))
    return "\n".join(lines)
