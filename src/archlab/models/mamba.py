"""Mamba language models and the tiny sequence-mixer presets (seed 000 and 001).

A Mamba LM is the decoder shell with mixer.kind=mamba, no FFN, no positional encoding, RMSNorm
pre-norm residual blocks, a final RMSNorm and an LM head tied to the embedding — exactly
transformers' MambaForCausalLM: h ← h + Mamba(RMSNorm(h)) per layer, logits = E·RMSNorm(h).
The sizes are those of the state-spaces/mamba-*-hf checkpoints (vocab 50280, N = 16, E = 2, K = 4).
`mixer-<kind>-tiny` are small models that differ only in their sequence mixer (plus an FFN per
block, as in the Zoology comparisons), for the synthetic recall tasks.
"""
from __future__ import annotations

from typing import Any

from archlab.config import from_dict
from archlab.models.transformer_config import TransformerConfig
from archlab.registry import names, register


def mamba_config(name: str, d_model: int, n_layers: int, *, vocab_size: int = 50280, max_seq_len: int = 65536,
                 **ssm: Any) -> TransformerConfig:
    """Mamba LM: residual + RMSNorm + Mamba mixer per layer, final RMSNorm, tied head, no FFN, no positions."""
    return from_dict(TransformerConfig, dict(
        name=name, vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, max_seq_len=max_seq_len,
        pos={"kind": "none"}, ffn={"enabled": False}, norm={"kind": "rmsnorm", "eps": 1e-5},
        block={"norm": "pre", "order": ["mixer"]}, head={"tie": True},
        mixer={"kind": "mamba", "ssm": {"d_state": 16, "d_conv": 4, "expand": 2, **ssm}}))


# state-spaces/mamba-*-hf sizes (d_model, layers)
MAMBA_SIZES = {"mamba-130m": (768, 24), "mamba-370m": (1024, 48), "mamba-790m": (1536, 48),
               "mamba-1.4b": (2048, 48), "mamba-2.8b": (2560, 64)}
for _name, (_d, _n) in MAMBA_SIZES.items():
    register("preset", _name)(lambda _name=_name, _d=_d, _n=_n: mamba_config(_name, _d, _n))
register("preset", "mamba-tiny")(lambda: mamba_config("mamba-tiny", 64, 2, vocab_size=256, max_seq_len=256))
register("preset", "mamba-lti-tiny")(lambda: mamba_config("mamba-lti-tiny", 64, 2, vocab_size=256, max_seq_len=256,
                                                          selective=[]))

# ----------------------------------------------------------------------------- tiny mixer zoo
MIXER_PRESETS = {  # preset suffix -> mixer section: every registered mixer (so a new one has a preset), two variants
    **{kind: {"kind": kind} for kind in names("mixer")},
    "mamba-lti": {"kind": "mamba", "ssm": {"selective": []}},
    "hybrid": {"kind": "mamba", "pattern": ["mamba", "attention"]},
}


def mixer_tiny(kind: str, *, d_model: int = 64, n_layers: int = 2, vocab_size: int = 256, max_seq_len: int = 256,
               **extra: Any) -> TransformerConfig:
    """Pre-norm RMSNorm blocks of (mixer, GELU FFN); RoPE only where a layer attends."""
    mixer = MIXER_PRESETS[kind]
    attends = mixer["kind"] == "attention" or "attention" in mixer.get("pattern", ())
    return from_dict(TransformerConfig, dict(
        name=f"mixer-{kind}-tiny", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
        max_seq_len=max_seq_len, pos={"kind": "rope" if attends else "none"}, attn={"n_heads": 4, "bias": False},
        ffn={"activation": "gelu", "d_ff": 2 * d_model, "bias": False}, norm={"kind": "rmsnorm", "eps": 1e-5},
        block={"norm": "pre"}, head={"tie": True}, mixer=mixer, **extra))


for _kind in MIXER_PRESETS:
    register("preset", f"mixer-{_kind}-tiny")(lambda _kind=_kind: mixer_tiny(_kind))

