"""WaveNet-style causal dilated convolution mixer (seed 001 "Option 3", van den Oord et al. 2016).

Layer i:  y_t = out_proj(act(Σ_{k=0}^{K−1} W_k x_{t − k·d_i} + b)),   d_i = 2^i (or 2^(i mod cycle))
Causal: the sequence is left-padded by (K−1)·d_i, so y_t only reads x_{≤t}. Stacking L layers with
doubling dilations gives a receptive field of 1 + (K−1)·Σ_i d_i tokens — exponential in depth, but
finite: anything further back is invisible, which is what the long-range tasks probe.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import check_positive
from archlab.cost.analytic import LayerCost
from archlab.cost.walk import linear_children, tokens
from archlab.nn.cache import causal_conv_input
from archlab.nn.ffn import activation
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, check_config, register


@dataclass(frozen=True)
class DilatedConvConfig:
    """WaveNet-style causal dilated conv mixer: layer i uses dilation 2^(i mod cycle)."""

    kernel_size: int = 2
    dilation_cycle: int = 0  # 0 = keep doubling through every layer
    activation: Literal["relu", "gelu", "silu", "tanh", "none"] = "gelu"

    def __post_init__(self) -> None:
        check_positive("mixer.conv.kernel_size", self.kernel_size)
        check_positive("mixer.conv.dilation_cycle", self.dilation_cycle, allow_zero=True)
        check_config(self, "mixer.conv")


def dilation_of_layer(layer_index: int, cycle: int = 0) -> int:
    """d_i = 2^i, or 2^(i mod cycle) when the doubling restarts every `cycle` layers."""
    return 2 ** (layer_index % cycle if cycle else layer_index)


def receptive_field(kernel_size: int, dilations: Iterable[int]) -> int:
    """Tokens a stack of causal convs can see: 1 + Σ (K − 1)·d_i."""
    return 1 + sum((kernel_size - 1) * d for d in dilations)


def stack_receptive_field(cfg: DilatedConvConfig, kinds: list[str]) -> int | None:
    """Receptive field of a stack whose layer i is mixer `kinds[i]`; None (unbounded) if any is not a conv."""
    if any(k != "dilated_conv" for k in kinds):
        return None
    return receptive_field(cfg.kernel_size, [dilation_of_layer(i, cfg.dilation_cycle) for i in range(len(kinds))])


def conv_cost(name, m, calls, ctx):
    """Causal dilated conv (applied functionally): B·T·D·D·K MACs, then out_proj."""
    conv = m.conv
    bt = sum(b * t for b, t in tokens(calls))
    k = conv.kernel_size[0]
    rows = [LayerCost(f"{name}.conv", "conv-dilated", ctx.take_params(conv),
                      bt * conv.out_channels * conv.in_channels * k, bt * conv.out_channels, bt * conv.in_channels,
                      note=f"k={k} dilation={m.dilation}: B·T·D·D·K",
                      extra={"state_elems": conv.in_channels * m.context})]
    return rows + linear_children(name, m, ctx)


@register("mixer", "dilated_conv", config=DilatedConvConfig, section="mixer.conv", cost=conv_cost)
class DilatedCausalConv(Mixer):
    """One causal dilated conv layer (B, T, D) -> (B, T, D), caching the last (K−1)·d inputs for decoding."""

    supports_cache = True

    def __init__(self, cfg: DilatedConvConfig, ctx: Context) -> None:
        super().__init__()
        d_model, kernel_size = ctx.d_model, cfg.kernel_size
        self.kernel_size = kernel_size
        self.dilation = dilation = dilation_of_layer(ctx.layer_index, cfg.dilation_cycle)
        self.context = (kernel_size - 1) * dilation  # past inputs each output reads
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)
        self.act = activation(cfg.activation)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        xin = causal_conv_input(x.transpose(1, 2), self.context, inputs.state, "x")  # (B, D, (K−1)·d + T)
        return self.out_proj(self.act(F.conv1d(xin, self.conv.weight, self.conv.bias, dilation=self.dilation)
                                      .transpose(1, 2)))

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {"x": torch.zeros(batch, self.conv.in_channels, self.context, device=device, dtype=dtype)}
