"""Multi-head attention: softmax(QKᵀ/√d + mask)V, with GQA/MQA, cross-attention and a KV cache.

`attn.scale` picks the factor on QKᵀ: "sqrt_d" (default) divides by √d, the key vector dimension (head_dim);
"none" leaves the scores undivided (factor 1), the ablation of that division. Both impls apply it.

`attention_reference` is the equation in plain tensor ops; `attention_sdpa` is torch's fused
`scaled_dot_product_attention`. tests/nn/test_attention_parity.py holds them equal.

The contract both follow: `mask` (bool, True = may attend) and `is_causal` (query i, the last Tq of
Tk positions, sees keys ≤ its own position) combine — a key is attended when both allow it — and a
query row left with no key at all is opened fully (its output is padding), as `build_mask` does.
`window` (sliding-window / local attention) adds one more condition: query i sees key j only when
|i − j| < window (aligned the same way), i.e. the last `window` keys under a causal mask, a symmetric
band without one. `SlidingKVCache` keeps only those keys while decoding.

The modules: `Attention` (self-attention) reads MixerInputs' `attn_mask` and `causal` as that `mask` and
`is_causal`; `CrossAttention` reads `memory` and `memory_mask`. What each is (is_cross, causal, window) is set
at construction, and that is what `attention_cost` prices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import ConfigError, check_positive, check_probability
from archlab.cost.analytic import LayerCost, attention_core_macs
from archlab.cost.walk import descends, first_input
from archlab.nn.cache import KVCache, SlidingKVCache  # noqa: F401 (the caches live in nn/cache.py; re-exported)
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, check_config, register


def combine_masks(mask, is_causal: bool, q_len: int, k_len: int, device=None, window: int | None = None):
    """The one mask for (mask, is_causal, window): their conjunction, with empty rows opened; None if none."""
    if not is_causal and window is None:
        return mask
    i = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)  # each query's position among the keys
    j = torch.arange(k_len, device=device)[None, :]
    keep = j <= i if is_causal else torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    if window is not None:
        keep = keep & (i - j < window) & (j - i < window)
    if mask is None:
        return keep
    both = mask.bool() & keep
    return both | ~both.any(-1, keepdim=True)


def attention_reference(q, k, v, mask=None, is_causal=False, dropout_p=0.0, training=False, window=None,
                        scale=None):
    """q: (B, H, Tq, d); k, v: (B, Hkv, Tk, d); mask: bool, True = may attend, broadcast to (B, H, Tq, Tk);
    window: each query sees only keys less than `window` positions away (None = all);
    scale: the factor on QKᵀ, None = 1/√d (as torch's SDPA)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    scores = scores / math.sqrt(q.shape[-1]) if scale is None else scores * scale
    mask = combine_masks(mask, is_causal, *scores.shape[-2:], device=q.device, window=window)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    if dropout_p and training:
        probs = F.dropout(probs, dropout_p)
    return probs @ v


def attention_sdpa(q, k, v, mask=None, is_causal=False, dropout_p=0.0, training=False, window=None, scale=None):
    """Same contract as attention_reference, through torch's fused kernels."""
    # SDPA takes one of mask / is_causal, and aligns is_causal top-left when Tq ≠ Tk: pass one combined mask then
    if (is_causal and (mask is not None or q.shape[2] != k.shape[2])) or window is not None:
        mask = combine_masks(mask, is_causal, q.shape[2], k.shape[2], device=q.device, window=window)
        is_causal = False
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal,
        dropout_p=dropout_p if training else 0.0, enable_gqa=q.shape[1] != k.shape[1], scale=scale,
    )


ATTENTION_IMPLS = {"reference": attention_reference, "sdpa": attention_sdpa}
SCORE_SCALES = {"sqrt_d": None, "none": 1.0}  # attn.scale -> the impls' `scale` (None = 1/√d, today's numbers)


def build_mask(q_len: int, k_len: int, *, causal: bool, key_mask=None, full_mask=None, device=None):
    """Boolean mask (B|1, 1, Tq, Tk), True = may attend; or None when no masking is needed.

    causal: query i (the last Tq of Tk positions) sees keys ≤ its own position.
    key_mask: (B, Tk) with True/1 for real tokens, False/0 for padding.
    full_mask: an explicit (B, Tq, Tk) or (B, 1, Tq, Tk) mask (e.g. prefix-LM), combined with the rest.
    Rows with nothing to attend to (padding queries) are opened fully so softmax stays finite;
    their outputs are padding and are ignored.
    """
    if key_mask is None and full_mask is None and (not causal or q_len == 1):
        return None
    mask = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=device)
    if causal:
        mask = mask & torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)
    if key_mask is not None:
        mask = mask & key_mask.bool()[:, None, None, :]
    if full_mask is not None:
        fm = full_mask.bool()
        mask = mask & (fm[:, None] if fm.dim() == 3 else fm)
    return mask | ~mask.any(-1, keepdim=True)


@dataclass(frozen=True)
class AttentionConfig:
    """Multi-head attention: softmax(QKᵀ·s + mask)V per head (s = 1/√d, or 1 with scale "none");
    GQA/MQA via n_kv_heads."""

    n_heads: int = 4
    n_kv_heads: int | None = None  # None = n_heads (MHA); 1 = MQA; between = GQA
    head_dim: int | None = None  # None = d_model // n_heads
    bias: bool = True  # bias on the q, k, v projections
    out_bias: bool | None = None  # bias on the output projection; None = same as `bias`
    causal: bool = True  # decoder self-attention mask; False lets a decoder see the future
    impl: Literal["sdpa", "reference"] = "sdpa"  # torch fast path, or the equation in plain ops
    dropout: float = 0.0  # on attention probabilities
    window: int | None = None  # sliding-window (local) self-attention: keys < window positions away; None = all
    scale: Literal["sqrt_d", "none"] = "sqrt_d"  # QKᵀ divided by √head_dim, or not divided at all (factor 1)

    def __post_init__(self) -> None:
        check_positive("attn.n_heads", self.n_heads)
        if self.window is not None and (not isinstance(self.window, int) or isinstance(self.window, bool)
                                        or self.window < 1):
            raise ConfigError(f"attn.window={self.window!r} is not allowed; expected a positive integer or null")
        if self.n_kv_heads is not None:
            check_positive("attn.n_kv_heads", self.n_kv_heads)
            if self.n_heads % self.n_kv_heads:
                raise ConfigError(
                    f"attn.n_kv_heads={self.n_kv_heads} must divide attn.n_heads={self.n_heads} "
                    "(each key/value head serves a whole group of query heads)"
                )
        if self.head_dim is not None:
            check_positive("attn.head_dim", self.head_dim)
        check_config(self, "attn")
        check_probability("attn.dropout", self.dropout)

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    def head_size(self, d_model: int) -> int:
        return self.head_dim or d_model // self.n_heads


def window_pairs(q_len: int, k_len: int, window: int, causal: bool, exact: bool) -> int:
    """(query, key) pairs of sliding-window attention, queries the last q_len of k_len positions.

    exact: only the pairs the band allows (causal: min(i+1, window) keys for query i); otherwise
    q_len · window, what a banded kernel computes (the analogue of counting the full causal square)."""
    width = window if causal else 2 * window - 1
    if not exact:
        return q_len * min(k_len, width)
    off = k_len - q_len
    if causal:
        return sum(min(off + i + 1, window) for i in range(q_len))
    return sum(min(off + i, window - 1) + min(k_len - 1 - off - i, window - 1) + 1 for i in range(q_len))


@descends
def attention_cost(name, m, calls, ctx):
    """q/k/v/o projections are its Linear children (priced by the walk); this row adds QKᵀ and AV.

    What the layer is comes from its construction (is_cross, causal, window); the lengths from the walk's one
    uncached forward: Tq from x, Tk from what k_proj projected (x itself, or the memory for cross-attention)."""
    macs = outs = ops = ins = 0
    causal, window = m.causal and not m.is_cross, m.window
    for c, kc in zip(calls, ctx.calls.get(f"{name}.k_proj", []), strict=True):
        (b, tq), tk = first_input(c)[:2], first_input(kc)[1]
        if window is None:
            macs += attention_core_macs(b, m.n_heads, tq, tk, m.head_dim, ctx.causal_half and causal)
        else:
            macs += 2 * b * m.n_heads * window_pairs(tq, tk, window, causal, ctx.causal_half) * m.head_dim
            tk = min(tk, window if causal else 2 * window - 1)  # keys each query reads
        ops += 5 * b * m.n_heads * tq * tk  # scale, mask, exp, sum, divide
        outs += b * tq * m.n_heads * m.head_dim
        ins += b * (tq * m.n_heads + 2 * tk * m.n_kv_heads) * m.head_dim  # Q, K, V read once (fused kernel)
    square = causal and window is None  # a windowed layer counts its band, never a causal square
    half = (f" (window {window}: T·window pairs)" if window is not None else "") + (
        " (causal: half counted)" if ctx.causal_half and square else (" (causal: full square counted)"
                                                                        if square else ""))
    return [LayerCost(f"{name}.core", "attn-core", 0, macs, outs, ins, ops=ops,
                      note=f"QKᵀ+AV: 2·B·H·Tq·Tk·d, H={m.n_heads} d={m.head_dim}{half}; softmax in ops",
                      extra={"heads": m.n_heads, "kv_heads": m.n_kv_heads, "head_dim": m.head_dim,
                             "cross": m.is_cross, "window": window})]


@register("mixer", "attention", config=AttentionConfig, section="attn", cost=attention_cost)
class Attention(Mixer):
    """Multi-head / grouped-query / multi-query self-attention over x's own sequence (and its cache)."""

    uses_padding_mask = True  # padding reaches it through inputs.attn_mask
    supports_cache = True

    def __init__(self, cfg: AttentionConfig, ctx: Context) -> None:
        super().__init__()
        d_model, head_dim = ctx.d_model, cfg.head_size(ctx.d_model)
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, head_dim
        self.q_proj = nn.Linear(d_model, self.n_heads * head_dim, bias=cfg.bias)
        self.k_proj = nn.Linear(d_model, self.n_kv_heads * head_dim, bias=cfg.bias)
        self.v_proj = nn.Linear(d_model, self.n_kv_heads * head_dim, bias=cfg.bias)
        self.o_proj = nn.Linear(self.n_heads * head_dim, d_model, bias=cfg.bias if cfg.out_bias is None
                                else cfg.out_bias)
        self.impl = cfg.impl
        self.dropout = cfg.dropout
        self.causal = ctx.causal and not self.is_cross  # declared: a decoder's queries see only earlier keys
        self.window = None if self.is_cross else cfg.window  # the window is over the sequence's own positions
        self.score_scale = SCORE_SCALES[cfg.scale]  # None = 1/√Dh, the impls' default
        object.__setattr__(self, "rope", ctx.rope)  # shared RotaryEmbedding, owned (registered) by the model

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # (B, n, T, Dh)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D): softmax(QKᵀ/√Dh + mask)V per head, then o_proj."""
        q = self._heads(self.q_proj(x), self.n_heads)  # (B, H, T, Dh)
        q, k, v, mask, causal = self.keys_values(q, x, inputs)  # k, v (B, Hkv, Tk, Dh)
        y = ATTENTION_IMPLS[self.impl](q, k, v, mask=mask, is_causal=causal, dropout_p=self.dropout,
                                       training=self.training, window=self.window, scale=self.score_scale)
        b, _, t, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def keys_values(self, q: torch.Tensor, x: torch.Tensor, inputs: MixerInputs):
        """(q, k, v, mask, causal) for self-attention: rotary positions, the cache, inputs' attn_mask and causal."""
        k = self._heads(self.k_proj(x), self.n_kv_heads)
        v = self._heads(self.v_proj(x), self.n_kv_heads)
        if self.rope is not None:
            q, k = self.rope(q, inputs.positions), self.rope(k, inputs.positions)
        mask, state = inputs.attn_mask, inputs.state
        if state is not None:
            if self.window is not None and not isinstance(state["cache"], SlidingKVCache):
                # a cache of another layout (e.g. perf's static T_max buffer) would misalign the band
                raise ValueError(f"attn.window={self.window} decodes only with the SlidingKVCache from init_state, "
                                 f"not a {type(state['cache']).__name__}")
            k, v = state["cache"].update(k, v, inputs.pos)
            if mask is not None and mask.shape[-1] > k.shape[2]:  # a sliding cache dropped the oldest keys
                mask = mask[..., -k.shape[2]:]
        return q, k, v, mask, inputs.causal

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        if self.window is not None:
            return {"cache": SlidingKVCache(batch, self.n_kv_heads, self.window, self.head_dim, device, dtype)}
        return {"cache": KVCache(batch, self.n_kv_heads, max_len, self.head_dim, device, dtype)}


class CrossAttention(Attention):
    """Attention from x's tokens to the encoder output inputs.memory (B, S, D), under inputs.memory_mask."""

    is_cross = True

    def keys_values(self, q: torch.Tensor, x: torch.Tensor, inputs: MixerInputs):
        """K, V from the memory, computed once per sequence (cached in state["kv"] while decoding)."""
        state = inputs.state
        if state is not None and "kv" in state:
            k, v = state["kv"]
        else:
            k = self._heads(self.k_proj(inputs.memory), self.n_kv_heads)
            v = self._heads(self.v_proj(inputs.memory), self.n_kv_heads)
            if state is not None:
                state["kv"] = (k, v)
        return q, k, v, inputs.memory_mask, False

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {}  # filled with the memory's K, V on the first call
