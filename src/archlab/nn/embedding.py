"""Token embedding: e = E[x] · (√D if scaled)."""
from __future__ import annotations

import math

import torch
from torch import nn

from archlab.cost.walk import embedding_cost
from archlab.errors import UserError
from archlab.registry import register


@register("embedding", "token", cost=embedding_cost)
class TokenEmbedding(nn.Module):
    """Lookup table of shape (vocab, D); optionally scaled by √D as in Vaswani et al. §3.4."""

    def __init__(self, vocab_size: int, dim: int, scale: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.scale = math.sqrt(dim) if scale else 1.0
        self.vocab_size = vocab_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = nn.functional.embedding(ids, self.weight)
        return e * self.scale if self.scale != 1.0 else e


def check_token_ids(ids: torch.Tensor, vocab_size: int, what: str = "input_ids") -> None:
    """Raise a clear ValueError for token ids outside [0, vocab_size) (a user mistake, not a torch crash)."""
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise UserError(f"{what} must be an integer tensor of token ids, got dtype {ids.dtype}")
    if ids.numel() == 0 or torch.compiler.is_compiling():
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise UserError(f"{what} holds token id {bad}, outside the vocabulary [0, {vocab_size})")
