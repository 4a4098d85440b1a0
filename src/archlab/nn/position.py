"""Positional encodings: none, sinusoidal (seed 002), learned, rotary (RoPE).

Each is registered as a "position" component built from PositionConfig. `applies_to` says where the
model uses it: "embeddings" (added to the token embeddings) or "qk" (rotates queries and keys inside
every attention layer).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from archlab.config import ConfigError, check_positive
from archlab.cost.analytic import LayerCost, numel
from archlab.registry import Context, check_config, check_name, register


@dataclass(frozen=True)
class RopeScalingConfig:
    """RoPE frequency scaling (HF `rope_scaling`): none, linear, or llama3."""

    kind: Literal["none", "linear", "llama3"] = "none"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_seq_len: int = 8192

    def __post_init__(self) -> None:
        check_config(self, "pos.rope_scaling")
        check_positive("pos.rope_scaling.factor", self.factor)


@dataclass(frozen=True)
class PositionConfig:
    """Positional information: `kind` is a registered position component (none, sinusoidal, learned, rope)."""

    kind: str = "learned"
    # seed 002: PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(...) -> "interleaved";
    # Marian/fairseq put all sines first, then all cosines -> "split".
    sinusoidal_layout: Literal["interleaved", "split"] = "interleaved"
    base: float = 10000.0  # the sinusoid's n in pos / n^(2i/D) (seed 003: "n can be set to any value")
    rope_theta: float = 10000.0
    rope_scaling: RopeScalingConfig = field(default_factory=RopeScalingConfig)
    # where an absolute encoding (learned / sinusoidal) enters the residual stream: added to the token embeddings
    # ("embedding", seed 000's "right after the embedding layer"), or after block `after_block` (1-based, of every
    # stack; 1 ≤ k < the stack's depth, checked by the model config) instead
    placement: Literal["embedding", "after_block"] = "embedding"
    after_block: int | None = None

    def __post_init__(self) -> None:
        check_name("pos.kind", "position", self.kind)
        check_config(self, "pos")
        check_positive("pos.rope_theta", self.rope_theta)
        check_positive("pos.base", self.base)
        if self.placement == "embedding" and self.after_block is not None:
            raise ConfigError(f"pos.after_block={self.after_block} is only read with pos.placement='after_block' "
                              "(got pos.placement='embedding'): set both, or neither")
        if self.placement == "after_block" and (type(self.after_block) is not int or self.after_block < 1):
            raise ConfigError(f"pos.placement='after_block' needs pos.after_block = k, an integer ≥ 1 (positions "
                              f"are added after block k), got pos.after_block={self.after_block!r}")

    def check_sizes(self, d_model: int, head_dim: int) -> None:
        """The sizes each encoding needs: rotary pairs up head channels (a sinusoid takes any d_model: an odd one
        has one more sine than cosine column, as Marian's)."""
        if self.kind == "rope" and head_dim % 2:
            raise ConfigError(f"pos.kind='rope' needs an even head size, got head_dim={head_dim}")


def position_cost(name, m, calls, ctx):
    """Parameter-free encodings: a rotation or an addition per element (ops, not MACs)."""
    n = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
    return [LayerCost(name, "position", ctx.take_params(m), 0, 0, ops=3 * n, note="rotation/addition: not MACs")]


def table_cost(name, m, calls, ctx):
    """A learned table: a lookup (gather), 0 MACs."""
    outs = sum(numel(c.out) for c in calls if isinstance(c.out, tuple))
    return [LayerCost(name, "embedding", ctx.take_params(m), 0, outs, note="lookup (gather): 0 MACs")]


def sinusoidal_table(n_positions: int, dim: int, layout: str = "interleaved", base: float = 10000.0) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / base^(2i/D)), PE(pos, 2i+1) = cos(pos / base^(2i/D)); base = 10000 in seed 002.

    layout="interleaved" is seed 002's formula as written; "split" puts every sine first and
    every cosine after (fairseq / Marian), the same numbers in another channel order.
    An odd D has ⌈D/2⌉ sine and ⌊D/2⌋ cosine columns (the last frequency has no cosine), as transformers'
    MarianSinusoidalPositionalEmbedding builds it; the formula above, kept to the channels 0..D-1.
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    inv_freq = torch.pow(float(base), -torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = pos * inv_freq  # (T, ⌈D/2⌉)
    if layout == "split":
        table = torch.cat([angles.sin(), angles[:, :dim // 2].cos()], dim=-1)
    else:
        table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :dim]
    return table.float()


@register("position", "sinusoidal", config=PositionConfig, section="pos", cost=position_cost)
class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal encodings added to the embeddings; no parameters."""

    applies_to = "embeddings"

    def __init__(self, cfg: PositionConfig, ctx: Context) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(ctx.max_len, ctx.d_model, cfg.sinusoidal_layout, cfg.base),
                             persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


@register("position", "learned", config=PositionConfig, section="pos", cost=table_cost)
class LearnedPositions(nn.Module):
    """A learned (max_len, D) table added to the embeddings (GPT-2, BERT)."""

    applies_to = "embeddings"

    def __init__(self, cfg: PositionConfig, ctx: Context) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ctx.max_len, ctx.d_model))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(positions, self.weight)


def rope_inv_freq(head_dim: int, theta: float, scaling=None) -> torch.Tensor:
    """θ_i = theta^(-2i/d), optionally rescaled (linear, or Llama 3's frequency-dependent rule)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if scaling is None or scaling.kind == "none":
        return inv_freq.float()
    if scaling.kind == "linear":
        return (inv_freq / scaling.factor).float()
    # llama3: long wavelengths are divided by `factor`, short ones kept, a smooth ramp between
    low_wavelen = scaling.original_max_seq_len / scaling.low_freq_factor
    high_wavelen = scaling.original_max_seq_len / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (scaling.original_max_seq_len / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled).float()


@register("position", "rope", config=PositionConfig, section="pos", cost=position_cost)
class RotaryEmbedding(nn.Module):
    """RoPE (Su et al. 2021): rotate each (x_i, x_{i+d/2}) pair of q and k by angle pos·θ_i."""

    applies_to = "qk"

    def __init__(self, cfg: PositionConfig, ctx: Context) -> None:
        super().__init__()
        self._inv_freq = rope_inv_freq(ctx.head_dim, cfg.rope_theta, cfg.rope_scaling)
        # plain fp32 attributes, not buffers: model.to(bfloat16) must not round the angles
        self._cos, self._sin = self._tables(ctx.max_len)
        self.cos, self.sin = self._cos, self._sin

    def _tables(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        angles = torch.outer(torch.arange(n, dtype=torch.float32), self._inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # (T, d): the "rotate half" layout of HF LLaMA
        return angles.cos(), angles.sin()

    def ensure(self, n_positions: int) -> None:
        """Extend the tables to cover positions < n_positions (RoPE has no length limit: transformers computes
        the angles for any position; row p is the same float32 p·θ_i whatever the table length)."""
        if n_positions <= self._cos.shape[0]:
            return
        device = self.cos.device
        self._cos, self._sin = self._tables(max(n_positions, 2 * self._cos.shape[0]))
        self.cos, self.sin = self._cos.to(device), self._sin.to(device)

    def _apply(self, fn, recurse=True):
        # probe on the tables' current device: a dtype-only fn (model.to(bfloat16)) must not move them to the CPU
        device = fn(torch.zeros(1, device=self.cos.device)).device
        self.cos, self.sin = self._cos.to(device), self._sin.to(device)
        return super()._apply(fn, recurse)

    @staticmethod
    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], dim=-1)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: (B, H, T, d); positions: (T,) or (B, T)."""
        cos, sin = self.cos[positions], self.sin[positions]
        if cos.dim() == 3:  # (B, T, d) -> (B, 1, T, d)
            cos, sin = cos[:, None], sin[:, None]
        return (x.float() * cos + self.rotate_half(x.float()) * sin).to(x.dtype)


@register("position", "none", config=PositionConfig, section="pos")
def no_positions(cfg: PositionConfig, ctx: Context) -> None:
    """No positional information at all (order only through causal masking or a recurrent mixer)."""
    return None
