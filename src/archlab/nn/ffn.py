"""Position-wise feed-forward network: FFN(x) = W2 · act(W1 x + b1) + b2, or a GLU variant."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION_FNS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact, erf-based (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "silu": F.silu,
    "tanh": torch.tanh,
    "none": lambda x: x,
}
GLU_GATES = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}


def activation(name: str):
    """The elementwise function called `name`."""
    return ACTIVATION_FNS[name]


class FeedForward(nn.Module):
    """Plain: W_out·act(W_in x). Gated (SwiGLU etc., Shazeer 2020): W_out·(act(W_gate x) ⊙ W_in x)."""

    def __init__(self, d_model: int, d_ff: int, act: str = "gelu", bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.gated = act in GLU_GATES
        self.act = activation(GLU_GATES.get(act, act))
        self.fc_in = nn.Linear(d_model, d_ff, bias=bias)
        self.fc_gate = nn.Linear(d_model, d_ff, bias=bias) if self.gated else None
        self.fc_out = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, **_) -> torch.Tensor:
        h = self.act(self.fc_gate(x)) * self.fc_in(x) if self.gated else self.act(self.fc_in(x))
        return self.fc_out(self.dropout(h))
