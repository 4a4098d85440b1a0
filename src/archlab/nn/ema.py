"""EMA mixer, the worked example of docs/how-to-add-a-component.md (this file is the whole component):
u_t = W_in x_t,  h_t = a ⊙ h_{t-1} + (1 − a) ⊙ u_t,  y_t = W_out h_t,  a = sigmoid(λ) ∈ (0, 1)^D, per channel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from archlab.config import ConfigError
from archlab.cost.analytic import LayerCost
from archlab.cost.walk import linear_children, tokens
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context, register


@dataclass(frozen=True)
class EMAConfig:
    """mixer.ema: the decay a = sigmoid(λ) starts at init_decay in every channel."""
    init_decay: float = 0.9  # a at initialisation, every channel

    def __post_init__(self) -> None:
        if not 0.0 < self.init_decay < 1.0:  # logit(a) must be finite
            raise ConfigError(f"mixer.ema.init_decay={self.init_decay!r} is not allowed; expected 0 < a < 1")


def ema_cost(name, m, calls, ctx):
    """h ← a⊙h + (1−a)⊙u, a one-state diagonal SSM scan: elementwise MACs FlopCounterMode cannot see."""
    bt, d = sum(b * t for b, t in tokens(calls)), m.in_proj.out_features
    return [LayerCost(f"{name}.ema", "ssm-scan", ctx.take_params(m, recurse=False), bt * d, bt * d, bt * d,
                      ops=bt * d, counter_visible=False, note="h←a⊙h+(1−a)⊙u: B·T·D", extra={"state_elems": d})
            ] + linear_children(name, m, ctx)


@register("mixer", "ema", config=EMAConfig, section="mixer.ema", cost=ema_cost)
class EMAMixer(Mixer):
    supports_cache = True  # init_state below: decoding carries h

    def __init__(self, cfg: EMAConfig, ctx: Context) -> None:
        super().__init__()
        self.init_decay = cfg.init_decay
        self.in_proj, self.out_proj = nn.Linear(ctx.d_model, ctx.d_model), nn.Linear(ctx.d_model, ctx.d_model)
        self.decay_logit = nn.Parameter(torch.empty(ctx.d_model))  # λ
        self.reset_parameters_special()

    @torch.no_grad()
    def reset_parameters_special(self) -> None:  # the model's generic init only touches Linear and Embedding
        self.decay_logit.fill_(math.log(self.init_decay / (1 - self.init_decay)))

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        a, u, state = torch.sigmoid(self.decay_logit), self.in_proj(x), inputs.state
        h = state["h"] if state is not None else u.new_zeros(u.shape[0], u.shape[2])
        ys = []
        for t in range(u.shape[1]):  # the plain recurrence
            h = a * h + (1 - a) * u[:, t]
            ys.append(h)
        if state is not None:
            state["h"] = h
        return self.out_proj(torch.stack(ys, dim=1))

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        return {"h": torch.zeros(batch, self.in_proj.in_features, device=device, dtype=dtype)}
