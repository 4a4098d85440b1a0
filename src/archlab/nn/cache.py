"""Decoding caches: the KV caches of attention, the input window of a causal convolution, and the one
batch reordering (beam search) that every cache and decoding state goes through.

Shapes: B batch, Hkv key/value heads, T new tokens, Dh head width, C channels, K−1 cached conv inputs.
"""
from __future__ import annotations

import torch


def reorder_rows(value, index: torch.Tensor, dim: int = 0):
    """Keep batch rows `index` of a decoding cache (beam search), along `dim` for tensors.

    Tensors and tuples are returned reordered; dicts are reordered in place (and returned), and so is
    anything with a `reorder(index)` method (the KV caches); other values (None, ints) pass through."""
    if isinstance(value, torch.Tensor):
        return value[(slice(None),) * dim + (index,)]
    if isinstance(value, tuple):
        return tuple(reorder_rows(v, index, dim) for v in value)
    if isinstance(value, dict):
        for key, v in value.items():
            value[key] = reorder_rows(v, index, dim)
        return value
    if hasattr(value, "reorder"):
        value.reorder(index)
    return value


class KVCacheBase:
    """Keys and values (B, Hkv, ·, Dh) of one attention layer; subclasses say which positions they keep."""

    k: torch.Tensor
    v: torch.Tensor

    def update(self, k: torch.Tensor, v: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search)."""
        self.k, self.v = reorder_rows((self.k, self.v), index)


class KVCache(KVCacheBase):
    """Pre-allocated keys and values (B, Hkv, T_max, Dh) for incremental decoding; a write past T_max grows
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


class SlidingKVCache(KVCacheBase):
    """The KV cache of sliding-window attention: it keeps only the last `window − 1` keys/values (all the next
    query can see besides its own), so memory stays O(window) however long the generation runs."""

    def __init__(self, batch: int, n_kv_heads: int, window: int, head_dim: int, device=None, dtype=None) -> None:
        self.k = torch.zeros(batch, n_kv_heads, 0, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.window, self.pos = window, 0

    def update(self, k: torch.Tensor, v: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the keys/values of positions pos..pos+T; return the kept ones followed by the new ones."""
        if pos != self.pos:
            raise ValueError(f"sliding-window cache holds positions up to {self.pos}, got a write at {pos}")
        k_all, v_all = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        keep = k_all.shape[2] - min(k_all.shape[2], self.window - 1)
        self.k, self.v, self.pos = k_all[:, :, keep:], v_all[:, :, keep:], pos + k.shape[2]
        return k_all, v_all


def causal_conv_input(x: torch.Tensor, context: int, state: dict | None, key: str) -> torch.Tensor:
    """x (B, C, T) left-padded to (B, C, context + T) for a causal convolution reading `context` past inputs.

    The padding is zeros in a full forward; while decoding it is the last `context` inputs, cached in
    state[key] (then updated with this call's tail), so step-by-step output equals the full forward."""
    prefix = state[key] if state is not None else x.new_zeros(x.shape[0], x.shape[1], context)
    xin = torch.cat([prefix.to(x.dtype), x], dim=-1)  # (B, C, context + T)
    if state is not None:
        state[key] = xin[..., xin.shape[-1] - context:]
    return xin
