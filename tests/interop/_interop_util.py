"""Helpers for the interop tests: tiny random transformers models with weights large enough to matter."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def scramble(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replace HF's tiny init by O(1)-logit random weights (so parity and greedy decoding are not trivial)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith(("A_log", "dt_proj.bias")) or "embed_positions" in name:
            continue  # Mamba's decay rates and step sizes stay in range; Marian's sinusoid table stays a sinusoid
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
        else:
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    if hasattr(model, "final_logits_bias"):
        model.final_logits_bias.copy_(0.5 * torch.randn(model.final_logits_bias.shape, generator=g))
    return model.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    """max |a - b| over the positions `keep` (B, T) marks, or everywhere."""
    d = (a.detach().float() - b.detach().float()).abs()
    if keep is not None:
        d = d[keep.bool()]
    return float(d.max())


def batch(vocab: int, b: int = 3, t: int = 11, seed: int = 1, pad_from: int = 7):
    """Random ids (B, T) and an attention mask whose last row is right-padded from `pad_from` on."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (b, t), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, pad_from:] = 0
    return ids, mask
