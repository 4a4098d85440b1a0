"""Normalisation layers: LayerNorm and RMSNorm."""
from __future__ import annotations

import torch
from torch import nn

from archlab.registry import register


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · g   (Zhang & Sennrich 2019); computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


@register("norm", "layernorm")
def layer_norm(dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """y = (x - mean) / sqrt(var + eps) · g + b   (Ba et al. 2016)."""
    return nn.LayerNorm(dim, eps=eps, bias=bias)


@register("norm", "rmsnorm")
def rms_norm(dim: int, eps: float = 1e-6, bias: bool = False) -> nn.Module:
    return RMSNorm(dim, eps)


def build_norm(cfg, dim: int) -> nn.Module:
    """Norm layer of width `dim` from a NormConfig."""
    from archlab.registry import build

    return build("norm", cfg.kind, dim, eps=cfg.eps, bias=cfg.bias)
