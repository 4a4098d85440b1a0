"""Linear token mixing (seed 001 "Option 1"): a learned causal T×T matrix over positions, then σ.

    y_t = out_proj(σ(Σ_{s ≤ t} W[t, s] x_s))        W ∈ R^{T_max × T_max}, lower-triangular

Every output reads every earlier input directly (no Markov bottleneck), but W is fixed after
training: the same positions are mixed the same way whatever the tokens are — the mixing weights
cannot depend on content, which is what recall tasks need. `per_head` > 1 gives each group of
D / per_head channels its own matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from archlab.config import check_positive
from archlab.cost.analytic import LayerCost
from archlab.cost.walk import first_input, linear_children
from archlab.errors import ConfigError
from archlab.nn.ffn import activation
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, check_config, register


@dataclass(frozen=True)
class TokenMixingConfig:
    """Seed 001 'Option 1': y = act(W x) with a learned causal T×T matrix W over positions."""

    activation: Literal["relu", "gelu", "silu", "tanh", "none"] = "gelu"
    per_head: int = 1  # independent mixing matrices over channel groups

    def __post_init__(self) -> None:
        check_config(self, "mixer.token_mixing")
        check_positive("mixer.token_mixing.per_head", self.per_head)


def token_mixing_cost(name, m, calls, ctx):
    """Learned T×T position mixing: y_t = Σ_s W[t,s] x_s computed as a dense (T×S)·(S×D) matmul: B·T·S·D
    (the walk's one uncached forward reads S = T positions)."""
    macs = outs = 0
    for c in calls:
        b, t, d = first_input(c)
        macs += b * t * t * d
        outs += b * t * d
    rows = [LayerCost(f"{name}.mix", "token-mixing", ctx.take_params(m, recurse=False), macs, outs,
                      note="dense W(T×S)·X(S×D) (the causal mask zeroes W, the matmul still runs): B·T·S·D")]
    return rows + linear_children(name, m, ctx)


@register("mixer", "token_mixing", config=TokenMixingConfig, section="mixer.token_mixing", cost=token_mixing_cost)
class TokenMixing(Mixer):
    """Causal learned position-mixing (B, T, D) -> (B, T, D); decoding caches every past input."""

    supports_cache = True
    fixed_length = True  # a max_len × max_len matrix: no positions past it (Transformer.position_limit)

    def __init__(self, cfg: TokenMixingConfig, ctx: Context) -> None:
        super().__init__()
        d_model, max_len, per_head = ctx.d_model, ctx.max_len, cfg.per_head
        if d_model % per_head:
            raise ConfigError(f"mixer.token_mixing.per_head={per_head} must divide d_model={d_model}")
        self.max_len, self.per_head = max_len, per_head
        self.weight = nn.Parameter(torch.empty(per_head, max_len, max_len))  # W[h, t, s]
        self.register_buffer("lower", torch.tril(torch.ones(max_len, max_len, dtype=torch.bool)), persistent=False)
        self.act = activation(cfg.activation)
        self.out_proj = nn.Linear(d_model, d_model)
        self.reset_parameters_special()

    @torch.no_grad()
    def reset_parameters_special(self) -> None:
        """Start as the causal running mean W[t, s] = 1/(t+1) for s ≤ t, plus N(0, 0.02) noise."""
        t = torch.arange(self.max_len, dtype=torch.float32)
        mean = self.lower.float() / (t + 1)[:, None]
        self.weight.copy_(mean + 0.02 * torch.randn_like(self.weight) * self.lower)

    def mix(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """Σ_{s ≤ t} W[t, s] x_s for the output rows t in `rows`, reading x over positions 0..len(x)-1."""
        bsz, S, D = x.shape
        W = (self.weight[:, rows, :S] * self.lower[rows, :S]).to(x.dtype)  # (H, T, S)
        xh = x.view(bsz, S, self.per_head, D // self.per_head).transpose(1, 2)  # (B, H, S, D/H)
        return (W @ xh).transpose(1, 2).reshape(bsz, -1, D)  # (B, T, D)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        T, pos, state = x.shape[1], inputs.pos, inputs.state
        if pos + T > self.max_len:
            raise ConfigError(f"token mixing has a {self.max_len}-position matrix; got positions up to {pos + T}")
        if state is not None:
            state["x"][:, pos:pos + T] = x
            x_all = state["x"][:, :pos + T]
        else:
            x_all = x if pos == 0 else torch.cat([x.new_zeros(x.shape[0], pos, x.shape[2]), x], dim=1)
        return self.out_proj(self.act(self.mix(x_all, slice(pos, pos + T))))

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {"x": torch.zeros(batch, min(max_len, self.max_len), self.out_proj.in_features, device=device,
                                 dtype=dtype)}
