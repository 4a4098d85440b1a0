"""Registry entry for the attention sequence mixer; other mixers register in their own modules.

A mixer is an nn.Module called as mixer(x, positions=, mask=, is_causal=, state=, pos=) on
(B, T, D) and returning (B, T, D), with init_state(batch, max_len, device, dtype) -> dict for
incremental decoding. Builders take (cfg: TransformerConfig, layer_index, rope).
"""
from __future__ import annotations

from archlab.nn.attention import Attention
from archlab.registry import register


def attention_from_config(cfg, rope=None) -> Attention:
    """Attention sized by a TransformerConfig."""
    a = cfg.attn
    return Attention(cfg.d_model, a.n_heads, a.kv_heads, cfg.head_dim, bias=a.bias,
                     out_bias=a.bias if a.out_bias is None else a.out_bias, impl=a.impl,
                     dropout=a.dropout, rope=rope)


@register("mixer", "attention")
def build_attention_mixer(cfg, layer_index: int, rope=None) -> Attention:
    return attention_from_config(cfg, rope)
