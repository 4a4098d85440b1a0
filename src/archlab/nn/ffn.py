"""Position-wise feed-forward network: FFN(x) = W2 · act(W1 x + b1) + b2, or a GLU variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from archlab.config import check_positive
from archlab.cost.walk import container_cost
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, check_config, register

ACTIVATION_FNS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact, erf-based (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "silu": F.silu,
    "tanh": torch.tanh,
    "none": lambda x: x,
}
GLU_GATES = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "swiglu", "geglu", "reglu", "none"]


def activation(name: str):
    """The elementwise function called `name`."""
    return ACTIVATION_FNS[name]


@dataclass(frozen=True)
class FFNConfig:
    """Position-wise feed-forward: W2·act(W1·x) or, for GLU variants, W2·(act(Wg·x) ⊙ W1·x)."""

    enabled: bool = True
    activation: Activation = "gelu"
    d_ff: int | None = None  # None = 4·d_model
    bias: bool = True

    def __post_init__(self) -> None:
        check_config(self, "ffn")
        if self.d_ff is not None:
            check_positive("ffn.d_ff", self.d_ff)

    @property
    def gated(self) -> bool:
        return self.activation in GLU_GATES


@register("ffn", "mlp", config=FFNConfig, section="ffn", cost=container_cost)
class FeedForward(Mixer):
    """Plain: W_out·act(W_in x). Gated (SwiGLU etc., Shazeer 2020): W_out·(act(W_gate x) ⊙ W_in x).

    A Block sub-layer like the mixers (same forward), position-wise: it reads no inputs and keeps no cache."""

    def __init__(self, cfg: FFNConfig, ctx: Context) -> None:
        super().__init__()
        act, d_ff = cfg.activation, cfg.d_ff or 4 * ctx.d_model
        self.gated = cfg.gated
        self.act = activation(GLU_GATES.get(act, act))
        self.fc_in = nn.Linear(ctx.d_model, d_ff, bias=cfg.bias)
        self.fc_gate = nn.Linear(ctx.d_model, d_ff, bias=cfg.bias) if self.gated else None
        self.fc_out = nn.Linear(d_ff, ctx.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(ctx.dropout)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        h = self.act(self.fc_gate(x)) * self.fc_in(x) if self.gated else self.act(self.fc_in(x))
        return self.fc_out(self.dropout(h))
