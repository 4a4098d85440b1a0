"""Training FLOPs per token and model FLOPs utilisation (MFU).

FLOPs per token (Kaplan et al. 2020; PaLM appendix B; nanoGPT's `estimate_mfu`):

    F = 6 · N_matmul + 12 · L · D_attn · T

N_matmul counts the parameters that take part in a matrix product (every weight except lookup
tables: the input token embedding and learned position table are gathers; a tied LM head is
counted once, as the head). 6 = 2 FLOPs per multiply-add × (1 forward + 2 backward). The second term
is the attention scores QKᵀ and the weighted sum PV (2 · 2 · T · D_attn per token per layer forward,
× 3 for forward + backward), over the full T × T square, causal mask or not (the PaLM convention).
"""
from __future__ import annotations

from torch import nn

# one source of device peaks and of MFU: archlab.cost.roofline (H100 SXM5 datasheet, dense bf16 = 989.4 TFLOP/s)
from archlab.cost.roofline import H100_SXM, mfu  # noqa: F401  (mfu re-exported for the benchmarks)

H100_SXM_BF16_DENSE_PEAK = H100_SXM.peak("bf16")


def matmul_params(model: nn.Module) -> int:
    """Parameters used in matrix products: all distinct parameters minus pure lookup tables not tied to a head."""
    head = getattr(model, "lm_head", None)
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    lookup_ids = set()
    for m in model.modules():
        if isinstance(m, nn.Embedding) or type(m).__name__ in ("TokenEmbedding", "LearnedPositions"):
            lookup_ids |= {id(p) for p in m.parameters(recurse=False)}
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) in lookup_ids and id(p) not in head_ids:
            continue
        total += p.numel()
    return total


def training_flops_per_token(n_matmul_params: int, n_layers: int, d_attn: int, seq_len: int) -> float:
    """6·N + 12·L·D·T: forward + backward FLOPs per trained token (see module docstring)."""
    return 6.0 * n_matmul_params + 12.0 * n_layers * d_attn * seq_len


def model_training_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """training_flops_per_token for an archlab Transformer (reads n_layers and the attention width from cfg)."""
    cfg = model.cfg
    d_attn = cfg.attn.n_heads * cfg.head_dim
    return training_flops_per_token(matmul_params(model), cfg.n_layers, d_attn, seq_len)

