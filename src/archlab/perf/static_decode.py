"""Batch-1 (or fixed-batch) decoding with a static KV cache, so every step has the same shapes.

The shell's KVCache returns a slice `[:pos+T]` whose length grows each step, so a compiled step
would see a new shape (and a CUDA graph could not be replayed). Here the cache is the full
(B, Hkv, T_max, d) buffer at a fixed address, new keys are written with `index_copy_` at a position
held in a device tensor, and attention runs over all T_max slots with the mask

    mask[i, j] = j ≤ position_i          (True = may attend)

so slots not yet written are ignored. The step has static shapes and no host synchronisation, and
`torch.compile(mode="reduce-overhead")` captures it as one CUDA graph. The result is the same function
as `Transformer.forward` with its dynamic cache (tests/perf/test_static_decode.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from archlab.nn.attention import Attention
from archlab.nn.embedding import check_token_ids
from archlab.nn.mixer import MixerInputs


class StaticKVCache:
    """Fixed-size keys/values (B, Hkv, T_max, d); `update` writes at `positions` (a (T,) tensor) and returns all."""

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, head_dim: int, device=None, dtype=None) -> None:
        self.k = torch.zeros(batch, n_kv_heads, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.max_len = max_len
        if self.k.is_cuda:  # CUDA graphs may then mutate them in place without copies
            torch._dynamo.mark_static_address(self.k)
            torch._dynamo.mark_static_address(self.v)

    def update(self, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v: (B, Hkv, T, d) for positions `pos` (T,) -> the whole cache (B, Hkv, T_max, d)."""
        self.k.index_copy_(2, pos, k.to(self.k.dtype))
        self.v.index_copy_(2, pos, v.to(self.v.dtype))
        return self.k, self.v

    def zero_(self) -> None:
        self.k.zero_()
        self.v.zero_()


@dataclass
class _StaticState:
    """What Stack.forward reads: `pos` (passed to every mixer; here the positions tensor) and per-layer caches."""

    pos: torch.Tensor
    layers: list[dict]
    memory: None = None
    extra: dict = field(default_factory=dict)


class StaticDecoder:
    """Greedy decoding of a decoder-only archlab Transformer through fixed-shape steps (optionally compiled)."""

    def __init__(self, model: nn.Module, max_len: int | None = None, *, batch: int = 1, compile: bool = False,
                 compile_mode: str = "reduce-overhead", dtype: torch.dtype | None = None) -> None:
        cfg = model.cfg
        if cfg.shape != "decoder" or model.decoder is None:
            raise ValueError(f"StaticDecoder needs a decoder-only model (cfg.shape='decoder'), got {cfg.shape!r}")
        mixers = [b.sub["mixer"] for b in model.decoder.blocks]
        if not all(isinstance(m, Attention) for m in mixers):
            kinds = sorted({type(m).__name__ for m in mixers})
            raise ValueError(f"StaticDecoder supports attention mixers only; this model has {kinds}")
        self.model = model
        self.max_len = max_len or cfg.max_seq_len
        if self.max_len > cfg.max_seq_len:
            raise ValueError(f"max_len={self.max_len} exceeds the model's max_seq_len={cfg.max_seq_len}")
        p = next(model.parameters())
        self.device, self.dtype = p.device, dtype or p.dtype
        self.batch = batch
        self.caches = [StaticKVCache(batch, m.n_kv_heads, self.max_len, m.head_dim, self.device, self.dtype)
                       for m in mixers]
        self._slots = torch.arange(self.max_len, device=self.device)
        self._step = self._forward
        if compile:
            self._step = torch.compile(self._forward, mode=compile_mode, fullgraph=True, dynamic=False)

    def reset(self) -> None:
        """Forget everything cached (the slots are masked anyway; zeroing keeps stale data out of sight)."""
        for c in self.caches:
            c.zero_()

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T), positions (T,) -> (logits (B, T, V), greedy next ids (B, 1)); shapes fixed for fixed T."""
        m = self.model
        mask = (self._slots[None, :] <= positions[:, None])[None, None]  # (1, 1, T, T_max)
        state = _StaticState(pos=positions, layers=[{"mixer": {"cache": c}} for c in self.caches])
        x = m.embed(ids, positions=positions)
        x = m.decoder(x, MixerInputs(positions=positions, pos=state.pos, attn_mask=mask), state.layers,
                      pos_vectors=m.late_positions(positions))
        logits = m.logits(x)
        return logits, logits[:, -1:].argmax(-1)

    def _check(self, ids: torch.Tensor, start: int) -> None:
        if ids.dim() != 2 or ids.shape[0] != self.batch:
            raise ValueError(f"ids must have shape ({self.batch}, T), got {tuple(ids.shape)}")
        if start + ids.shape[1] > self.max_len:
            raise ValueError(f"decoding reaches position {start + ids.shape[1]}, beyond max_len={self.max_len}")

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the prompt (eager; its length varies) and fill the cache; returns (logits, next ids)."""
        self._check(ids, start)
        check_token_ids(ids, self.model.cfg.vocab_size)
        positions = torch.arange(start, start + ids.shape[1], device=self.device)
        return self._forward(ids, positions)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per sequence: ids (B, 1), position (1,) long tensor on the device -> (logits, next ids)."""
        return self._step(ids, position)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy continuation: (B, P) -> (B, P + max_new_tokens). One host sync, at the end."""
        self._check(prompt, 0)
        if prompt.shape[1] + max_new_tokens > self.max_len:
            raise ValueError(f"prompt {prompt.shape[1]} + {max_new_tokens} new tokens exceeds max_len={self.max_len}")
        self.reset()
        _, tok = self.prefill(prompt)
        out = [tok]
        pos = torch.tensor([prompt.shape[1]], device=self.device)
        for _ in range(max_new_tokens - 1):
            _, tok = self.step(tok.clone(), pos)
            tok = tok.clone()  # a CUDA-graph output is overwritten by the next replay
            out.append(tok)
            pos += 1
        return torch.cat([prompt, *out[:max_new_tokens]], dim=1)


def greedy_reference(model: nn.Module, prompt: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Plain greedy decoding by re-running the full forward pass each step (the reference for tests)."""
    ids = prompt
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = model(ids)[:, -1:].argmax(-1)
            ids = torch.cat([ids, nxt], dim=1)
    return ids
