"""A residual block: an ordered list of sub-layers, each wrapped in residual + norm.

pre-norm:  x ← x + f(norm(x))        (GPT-2, LLaMA; trains without warm-up, Xiong et al. 2020)
post-norm: x ← norm(x + f(x))        (the original Transformer, BERT)
none:      x ← x + f(x)
residual off drops the "x +" (seed 000's "no residual" ablation).
"""
from __future__ import annotations

import torch
from torch import nn

from archlab.nn.mixer import Mixer, MixerInputs
from archlab.nn.norm import build_norm


class Block(nn.Module):
    """Sub-layers ("mixer", "cross", "ffn") applied in `order`, each with its own norm; each is a Mixer and
    reads the same MixerInputs, with its own cache from the layer's state."""

    def __init__(self, sublayers: dict[str, Mixer], order: tuple[str, ...], *, norm_cfg, d_model: int,
                 placement: str = "pre", residual: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.order = tuple(name for name in order if name in sublayers)
        self.sub = nn.ModuleDict(sublayers)
        self.norms = nn.ModuleDict(
            {name: build_norm(norm_cfg, d_model) for name in self.order} if placement != "none" else {}
        )
        self.placement, self.residual = placement, residual
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, inputs: MixerInputs, state: dict | None = None) -> torch.Tensor:
        """x (B, T, D); state: this layer's caches by sub-layer name (decoding), or None."""
        for name in self.order:
            f, sub_inputs = self.sub[name], inputs.with_state(state.get(name) if state is not None else None)
            if self.placement == "pre":
                h = self.dropout(f(self.norms[name](x), sub_inputs))
                x = x + h if self.residual else h
            elif self.placement == "post":
                h = self.dropout(f(x, sub_inputs))
                x = self.norms[name](x + h if self.residual else h)
            else:
                h = self.dropout(f(x, sub_inputs))
                x = x + h if self.residual else h
        return x

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict[str, dict]:
        """The empty caches of the sub-layers that keep one (supports_cache), by name."""
        return {name: f.init_state(batch, max_len, device, dtype) for name, f in self.sub.items() if f.supports_cache}
