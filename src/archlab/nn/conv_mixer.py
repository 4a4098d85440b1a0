"""WaveNet-style causal dilated convolution mixer (seed 001 "Option 3", van den Oord et al. 2016).

Layer i:  y_t = out_proj(act(Σ_{k=0}^{K−1} W_k x_{t − k·d_i} + b)),   d_i = 2^i (or 2^(i mod cycle))
Causal: the sequence is left-padded by (K−1)·d_i, so y_t only reads x_{≤t}. Stacking L layers with
doubling dilations gives a receptive field of 1 + (K−1)·Σ_i d_i tokens — exponential in depth, but
finite: anything further back is invisible, which is what the long-range tasks probe.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from archlab.nn.ffn import activation
from archlab.registry import register


def dilation_of_layer(layer_index: int, cycle: int = 0) -> int:
    """d_i = 2^i, or 2^(i mod cycle) when the doubling restarts every `cycle` layers."""
    return 2 ** (layer_index % cycle if cycle else layer_index)


def receptive_field(kernel_size: int, dilations: Iterable[int]) -> int:
    """Tokens a stack of causal convs can see: 1 + Σ (K − 1)·d_i."""
    return 1 + sum((kernel_size - 1) * d for d in dilations)


def model_receptive_field(cfg) -> int | None:
    """Receptive field of a TransformerConfig's mixer stack; None (unbounded) if any layer is not a conv."""
    kinds = [cfg.mixer.kind_of_layer(i) for i in range(cfg.n_layers)]
    if any(k != "dilated_conv" for k in kinds):
        return None
    c = cfg.mixer.conv
    return receptive_field(c.kernel_size, [dilation_of_layer(i, c.dilation_cycle) for i in range(cfg.n_layers)])


class DilatedCausalConv(nn.Module):
    """One causal dilated conv layer (B, T, D) -> (B, T, D), caching the last (K−1)·d inputs for decoding."""

    def __init__(self, d_model: int, kernel_size: int = 2, dilation: int = 1, act: str = "gelu") -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.context = (kernel_size - 1) * dilation  # past inputs each output reads
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)
        self.act = activation(act)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, *, state: dict | None = None, **_) -> torch.Tensor:
        xt = x.transpose(1, 2)  # (B, D, T)
        prefix = state["x"] if state is not None else xt.new_zeros(xt.shape[0], xt.shape[1], self.context)
        xin = torch.cat([prefix.to(xt.dtype), xt], dim=-1)
        if state is not None:
            state["x"] = xin[..., xin.shape[-1] - self.context:]
        return self.out_proj(self.act(F.conv1d(xin, self.conv.weight, self.conv.bias, dilation=self.dilation)
                                      .transpose(1, 2)))

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {"x": torch.zeros(batch, self.conv.in_channels, self.context, device=device, dtype=dtype)}


@register("mixer", "dilated_conv")
def build_dilated_conv_mixer(cfg, layer_index: int, rope=None) -> DilatedCausalConv:
    c = cfg.mixer.conv
    return DilatedCausalConv(cfg.d_model, c.kernel_size, dilation_of_layer(layer_index, c.dilation_cycle),
                             c.activation)
