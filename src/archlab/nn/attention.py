"""Multi-head attention: softmax(QKᵀ/√d + mask)V, with GQA/MQA, cross-attention and a KV cache.

`attention_reference` is the equation in plain tensor ops; `attention_sdpa` is torch's fused
`scaled_dot_product_attention`. tests/nn/test_attention.py holds them equal.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def attention_reference(q, k, v, mask=None, is_causal=False, dropout_p=0.0, training=False):
    """q: (B, H, Tq, d); k, v: (B, Hkv, Tk, d); mask: bool, True = may attend, broadcast to (B, H, Tq, Tk)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    if is_causal:
        tq, tk = scores.shape[-2:]
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    if dropout_p and training:
        probs = F.dropout(probs, dropout_p)
    return probs @ v


def attention_sdpa(q, k, v, mask=None, is_causal=False, dropout_p=0.0, training=False):
    """Same contract as attention_reference, through torch's fused kernels."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
        dropout_p=dropout_p if training else 0.0, enable_gqa=q.shape[1] != k.shape[1],
    )


ATTENTION_IMPLS = {"reference": attention_reference, "sdpa": attention_sdpa}


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


class KVCache:
    """Pre-allocated keys and values (B, Hkv, T_max, d) for incremental decoding; a write past T_max grows
    the buffers (doubling), so models without a position limit (RoPE) decode to any length."""

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, head_dim: int, device=None, dtype=None) -> None:
        self.k = torch.zeros(batch, n_kv_heads, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.max_len = max_len

    def update(self, k: torch.Tensor, v: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys/values at positions pos..pos+T and return everything up to there."""
        end = pos + k.shape[2]
        if end > self.max_len:
            size = max(end, 2 * self.max_len)
            k_new, v_new = (t.new_zeros(*t.shape[:2], size, t.shape[3]) for t in (self.k, self.v))
            k_new[:, :, :pos], v_new[:, :, :pos] = self.k[:, :, :pos], self.v[:, :, :pos]
            self.k, self.v, self.max_len = k_new, v_new, size
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search)."""
        self.k, self.v = self.k[index], self.v[index]


class Attention(nn.Module):
    """Multi-head / grouped-query / multi-query attention; cross-attention when given `memory`."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, head_dim: int, *, bias: bool = True,
                 out_bias: bool = True, impl: str = "sdpa", dropout: float = 0.0, rope=None) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=out_bias)
        self.impl = impl
        self.dropout = dropout
        object.__setattr__(self, "rope", rope)  # shared RotaryEmbedding, owned (registered) by the model

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.head_dim).transpose(1, 2)  # (B, n, T, d)

    def forward(self, x, *, positions=None, mask=None, is_causal=False, memory=None, state=None, pos=0):
        """x: (B, T, D). Self-attention unless `memory` (B, S, D) is given. state: this layer's cache."""
        q = self._heads(self.q_proj(x), self.n_heads)
        if memory is not None:  # cross-attention: K, V from the encoder, computed once per sequence
            if state is not None and "kv" in state:
                k, v = state["kv"]
            else:
                k = self._heads(self.k_proj(memory), self.n_kv_heads)
                v = self._heads(self.v_proj(memory), self.n_kv_heads)
                if state is not None:
                    state["kv"] = (k, v)
        else:
            k = self._heads(self.k_proj(x), self.n_kv_heads)
            v = self._heads(self.v_proj(x), self.n_kv_heads)
            if self.rope is not None:
                q, k = self.rope(q, positions), self.rope(k, positions)
            if state is not None:
                k, v = state["cache"].update(k, v, pos)
        y = ATTENTION_IMPLS[self.impl](q, k, v, mask=mask, is_causal=is_causal,
                                       dropout_p=self.dropout, training=self.training)
        b, _, t, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {"cache": KVCache(batch, self.n_kv_heads, max_len, self.head_dim, device, dtype)}
