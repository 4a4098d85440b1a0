"""Seed errata: every place a seed's text disagrees with what archlab computes, each decided by computation.

Each entry quotes the seed, computes the disputed value with archlab's own components (and, where one
exists, the seed's formula as written), and says how. `archlab errata` prints them; nothing is copied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from archlab.config import apply_overrides
from archlab.cost.model_cost import model_cost
from archlab.cost.seed003 import examples
from archlab.models import preset
from archlab.nn.attention import attention_reference
from archlab.nn.norm import NormConfig, RMSNorm
from archlab.nn.position import sinusoidal_table
from archlab.registry import Context


@dataclass(frozen=True)
class Erratum:
    """One seed slip: the seed's text, the value archlab computes, and how it was computed."""

    key: str
    seed: str  # "003"
    topic: str
    seed_text: str
    computed: str
    how: str


def rmsnorm_epsilon(x: float = 1e-4, eps: float = 1e-6) -> tuple[float, float]:
    """archlab's RMSNorm (ε inside the root) vs seed 003's x / (RMS(x) + ε) on a one-element vector."""
    with torch.no_grad():
        lab = float(RMSNorm(NormConfig(kind="rmsnorm", eps=eps), Context(1))(torch.tensor([[x]], dtype=torch.float64)))
    seed = x / (math.sqrt(x * x) + eps)
    return lab, seed


def sinusoid_exponent(k: int = 1, i: int = 1, d_model: int = 8) -> tuple[float, float]:
    """PE(k, 2i) from archlab's table vs seed 003's second slide, sin(k / n^(d/(2i))) with n = 10000."""
    lab = float(sinusoidal_table(k + 1, d_model)[k, 2 * i])
    seed = math.sin(k / 10000 ** (d_model / (2 * i)))
    return lab, seed


def attention_scale(d_head: int = 16, seq_len: int = 9) -> tuple[float, float]:
    """The score scale archlab's attention applies, measured: softmax(QKᵀ·s)V for s = 1/√d_head vs 1/√T."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, seq_len, d_head, generator=g, dtype=torch.float64) for _ in range(3))
    out = attention_reference(q, k, v)

    def with_scale(s: float) -> torch.Tensor:
        return torch.softmax(q @ k.transpose(-1, -2) * s, dim=-1) @ v

    by_head = float((out - with_scale(d_head**-0.5)).abs().max())
    by_length = float((out - with_scale(seq_len**-0.5)).abs().max())
    return by_head, by_length


def heads_cost(n_heads: tuple[int, ...] = (1, 4, 8), d_model: int = 512, seq_len: int = 128) -> dict[int, tuple]:
    """Parameters and forward MACs of one GPT-style model per head count (same width), from the cost model."""
    out = {}
    for h in n_heads:
        cfg = apply_overrides(preset("gpt-tiny"), [f"d_model={d_model}", f"attn.n_heads={h}", "n_layers=2"])
        mc = model_cost(cfg, seq_len=seq_len)
        out[h] = (mc.params, mc.macs)
    return out


def worked_convolution() -> tuple[list[float], list[list[float]]]:
    """Seed 003's 5×5 image ⊛ 3×3 kernel (weights read from the slide's subscripts), by torch's conv2d."""
    image = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]],
                         dtype=torch.float64)
    kernel = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.float64)
    fmap = torch.nn.functional.conv2d(image[None, None], kernel[None, None])[0, 0]
    return [5.0, 4.0], fmap.tolist()


def errata() -> list[Erratum]:
    """Every seed slip archlab knows of, each recomputed now."""
    out = []
    lab, seed = rmsnorm_epsilon()
    out.append(Erratum(
        "rmsnorm_eps", "003", "RMSNorm: where ε goes", "x̂ = x / (RMS(x) + ε)",
        f"x = 1e-4, ε = 1e-6: archlab {lab:.4f}, the seed's formula {seed:.4f}",
        "archlab.nn.norm.RMSNorm (x/√(mean(x²)+ε), Zhang & Sennrich 2019, as LLaMA and transformers) on a one-element "
        "vector vs the seed's expression; ε outside the root rescales small inputs to ≈1 instead of damping them."))
    lab, seed = sinusoid_exponent()
    out.append(Erratum(
        "pe_exponent", "003", "sinusoidal positions, second slide", "PE(k,2i) = sin(k / n^(d_model/2i)), "
        "ω_i = 10000^(2i/d_model)",
        f"k = 1, i = 1, d = 8: archlab {lab:.6f}, the slide's formula {seed:.2e}; at i = 0 the slide divides by 0",
        "archlab.nn.position.sinusoidal_table (Vaswani et al.: sin(k/10000^(2i/d))) vs the slide: its exponent is "
        "inverted (d/2i) and ω lacks the reciprocal, so every dimension past the first is ≈ sin(0) = 0. The "
        "first slide (ω_k = 1/10000^(2k/d)) is right. Its 'n can be set to any value' is pos.base in archlab."))
    by_head, by_len = attention_scale()
    out.append(Erratum(
        "attention_scale", "004", "what the scores are divided by",
        "We divide the scores by the square root of the sentence length (key vector dimension)",
        f"d_head = 16, T = 9: |archlab − softmax(QKᵀ/√d_head)V| = {by_head:.1e}; vs /√T: {by_len:.2f}",
        "archlab.nn.attention.attention_reference compared with both scalings on random fp64 Q, K, V: the "
        "divisor is √d_k, the key vector dimension (as the seed's own formulas write), not the sentence length."))
    costs = heads_cost()
    same = len(set(costs.values())) == 1
    row = ", ".join(f"{h} head(s): {p:,} params / {m / 1e6:.1f}M MACs" for h, (p, m) in costs.items())
    out.append(Erratum(
        "heads_compute", "002", "does multi-head attention add compute?",
        "Computational Complexity: Increased computational requirements due to multiple attention heads.",
        row + ("  — identical" if same else "  — they differ"),
        "archlab.cost.model_cost on gpt-tiny at d_model 512, 2 layers, T = 128: the heads split d_model "
        "(d_head = D/H), so QKV/output projections and the QKᵀ and AV products cost the same for any H; only "
        "the softmax's element count (H·T², not MACs) grows."))
    seed_vals, fmap = worked_convolution()
    out.append(Erratum(
        "worked_convolution", "003", "the 5×5 ⊛ 3×3 worked example", "convoluted feature starts 5, 4",
        f"first row {fmap[0]} (full map {fmap})",
        "torch.nn.functional.conv2d (cross-correlation, as the slide says) of the slide's image with the kernel "
        "read from its x-subscripts [[1,0,1],[0,1,1],[1,1,0]]: the first window sums to 4, not 5 (the second, 4, "
        "agrees; flipping the kernel, true convolution, also gives 4)."))
    for ex in examples():
        if ex.verdict != "agrees":
            lab_value = f"{ex.lab_value:,.4f}" if ex.lab_value != int(ex.lab_value) else f"{int(ex.lab_value):,}"
            out.append(Erratum(ex.key, "003", ex.title, ex.seed_text, lab_value, ex.explanation))
    return out


def report() -> str:
    """The errata as text, one block per slip."""
    lines = ["Seed errata: the seed's text, archlab's computed value, and how it was computed", ""]
    for e in errata():
        lines += [f"[seed {e.seed}] {e.topic}", f"    seed:     {e.seed_text}", f"    computed: {e.computed}",
                  f"    how:      {e.how}", ""]
    return "\n".join(lines).rstrip() + "\n"
