"""Normalisation layers: LayerNorm and RMSNorm, registered as "norm" components built from NormConfig."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archlab.config import check_positive
from archlab.cost.walk import norm_cost
from archlab.registry import Context, build, check_name, register


@dataclass(frozen=True)
class NormConfig:
    """Which normalisation (a registered norm: layernorm = mean and variance, rmsnorm = scale only)."""

    kind: str = "layernorm"
    eps: float = 1e-5
    bias: bool = True  # LayerNorm bias (RMSNorm has none)

    def __post_init__(self) -> None:
        check_name("norm.kind", "norm", self.kind)
        check_positive("norm.eps", self.eps)


@register("norm", "rmsnorm", config=NormConfig, section="norm", cost=norm_cost)
class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · g   (Zhang & Sennrich 2019); computed in fp32."""

    def __init__(self, cfg: NormConfig, ctx: Context) -> None:
        super().__init__()
        self.eps = cfg.eps
        self.weight = nn.Parameter(torch.ones(ctx.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


@register("norm", "layernorm", config=NormConfig, section="norm")
def layer_norm(cfg: NormConfig, ctx: Context) -> nn.Module:
    """y = (x - mean) / sqrt(var + eps) · g + b   (Ba et al. 2016)."""
    return nn.LayerNorm(ctx.d_model, eps=cfg.eps, bias=cfg.bias)


def build_norm(cfg: NormConfig, dim: int) -> nn.Module:
    """Norm layer of width `dim` from a NormConfig."""
    return build("norm", cfg.kind, cfg, Context(d_model=dim))
