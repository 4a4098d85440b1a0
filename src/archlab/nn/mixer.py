"""The mixer interface: every sub-layer of a Block is `forward(x, inputs) -> y`, x and y (B, T, D).

`MixerInputs` is everything a mixer may read besides x, typed; `Mixer` is the base class whose class
attributes declare what a mixer can do, so the model shell and the cost walk read declarations instead of
probing. Shapes: B batch, T new tokens (x), Tk keys (= pos + T for self-attention), S memory length.

The one mask vocabulary (below the models' public `attention_mask` arguments, these are the only names):
  causal       bool: query i, the last T of Tk positions, sees only keys j ≤ its own position
               (the attention kernel applies it; it combines with attn_mask by conjunction)
  attn_mask    (B|1, 1, T, Tk) bool, True = may attend: what else self-attention must respect
               (key padding, a prefix-LM mask, causality past a cache), as built by attention.build_mask
  key_padding  (B, Tk) 1/True = real token, 0 = pad: the same padding per token, for mixers that do not
               attend (Mamba zeroes pads); Tk ≥ T, its last T columns are x's tokens
  memory_mask  (B|1, 1, T, S) bool, True = may attend: which memory positions cross-attention reads
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class MixerInputs:
    """What a mixer may read besides x (B, T, D); the masks follow the module docstring's vocabulary."""

    positions: torch.Tensor | None = None  # (T,) absolute positions of x's tokens (rotary embeddings)
    pos: int | torch.Tensor = 0  # index of x[:, 0]: tokens before it are in `state` (a cache offset)
    causal: bool = False
    attn_mask: torch.Tensor | None = None  # (B|1, 1, T, Tk)
    key_padding: torch.Tensor | None = None  # (B, Tk)
    memory: torch.Tensor | None = None  # (B, S, D) the encoder output, for cross-attention
    memory_mask: torch.Tensor | None = None  # (B|1, 1, T, S)
    state: dict | None = None  # this sub-layer's cache from its init_state; None in a full forward

    def with_state(self, state: dict | None) -> MixerInputs:
        """The same inputs for one sub-layer, with that sub-layer's cache."""
        return self if state is self.state else dataclasses.replace(self, state=state)


NO_INPUTS = MixerInputs()  # a plain full forward: no masks, no cache, position 0


class Mixer(nn.Module):
    """Base of every Block sub-layer: forward(x (B, T, D), inputs: MixerInputs) -> (B, T, D).

    Capabilities are declared as class attributes (an instance may refine them from its config):
    """

    uses_padding_mask: ClassVar[bool] = False  # honours padding (attn_mask / key_padding): left padding is safe
    is_cross: ClassVar[bool] = False  # reads inputs.memory (cross-attention), not x's own sequence
    supports_cache: ClassVar[bool] = False  # init_state() gives the cache for token-by-token decoding
    fixed_length: ClassVar[bool] = False  # cannot read past ctx.max_len positions (Transformer.position_limit)
    causal: bool = True  # the output at t reads only inputs at ≤ t (attention: set from Context.causal)
    window: int | None = None  # attends only to keys fewer than `window` positions away (sliding window)

    def forward(self, x: torch.Tensor, inputs: MixerInputs = NO_INPUTS) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, batch: int, max_len: int, device=None, dtype=None) -> dict:
        """The empty decoding cache of this sub-layer (declared by supports_cache)."""
        raise NotImplementedError(f"{type(self).__name__} does not decode token by token (supports_cache=False)")
