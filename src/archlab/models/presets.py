"""Named model presets with their real sizes (gpt2 = 124,439,808 params, bert-base = 109,482,240)."""
from __future__ import annotations

import warnings
from typing import Any

from archlab.config import apply_overrides, from_dict
from archlab.models.transformer_config import TransformerConfig
from archlab.registry import get, names, register

# old name -> (new name, why): still accepted, with a warning; not listed by preset_names()
DEPRECATED_ALIASES = {
    "llama-124m": ("llama-153m", "it has 152.8M parameters: 12 LLaMA blocks of width 768 and an untied "
                   "50,304 × 768 head"),
}


def preset(name: str, **overrides: Any):
    """The config registered as `name`, with optional dotted-key overrides in keyword form (`attn__n_heads=2` is
    `attn.n_heads=2`), applied by archlab.config.apply_overrides (archlab.dotted's rules). A deprecated name
    (DEPRECATED_ALIASES) gives its new preset and a FutureWarning."""
    if name in DEPRECATED_ALIASES:
        new, why = DEPRECATED_ALIASES[name]
        warnings.warn(f"preset {name!r} is deprecated, renamed {new!r} ({why}); use {new!r}", FutureWarning,
                      stacklevel=2)
        name = new
    cfg = get("preset", name)()
    return apply_overrides(cfg, {k.replace("__", "."): v for k, v in overrides.items()}) if overrides else cfg


def preset_names() -> list[str]:
    return names("preset")


def _t(**data: Any) -> TransformerConfig:
    return from_dict(TransformerConfig, data)


def _gpt2(name: str, d: int, layers: int, heads: int, **extra: Any) -> TransformerConfig:
    """GPT-2: learned positions, pre-norm LayerNorm, GELU (tanh approx.), tied LM head."""
    return _t(name=name, vocab_size=50257, d_model=d, n_layers=layers, max_seq_len=1024,
              pos={"kind": "learned"}, attn={"n_heads": heads}, ffn={"activation": "gelu_tanh"},
              norm={"kind": "layernorm", "eps": 1e-5}, block={"norm": "pre"}, head={"tie": True}, **extra)


def _llama(name: str, vocab: int, d: int, layers: int, heads: int, kv: int, d_ff: int, *, ctx: int,
           theta: float = 10000.0, tie: bool = False, eps: float = 1e-5, **extra: Any) -> TransformerConfig:
    """LLaMA: RoPE, RMSNorm pre-norm, SwiGLU, grouped-query attention, no biases."""
    return _t(name=name, vocab_size=vocab, d_model=d, n_layers=layers, max_seq_len=ctx,
              pos={"kind": "rope", "rope_theta": theta, **extra.pop("pos", {})},
              attn={"n_heads": heads, "n_kv_heads": kv, "bias": False},
              ffn={"activation": "swiglu", "d_ff": d_ff, "bias": False},
              norm={"kind": "rmsnorm", "eps": eps}, block={"norm": "pre"}, head={"tie": tie}, **extra)


def _bert(name: str, d: int, layers: int, heads: int, *, mlm: bool, vocab: int = 30522, ctx: int = 512,
          **extra: Any):
    """BERT: token + segment + learned positions, embedding LayerNorm, post-norm, GELU, pooler."""
    return _t(name=name, vocab_size=vocab, d_model=d, n_layers=layers, max_seq_len=ctx, shape="encoder",
              embed={"n_segments": 2, "norm": True}, pos={"kind": "learned"}, attn={"n_heads": heads},
              ffn={"activation": "gelu"}, norm={"kind": "layernorm", "eps": 1e-12}, block={"norm": "post"},
              head={"lm": mlm, "tie": True, "bias": mlm, "transform": mlm, "pooler": True}, **extra)


def _vaswani(name: str, vocab: int, d: int, layers: int, heads: int, d_ff: int, **extra: Any):
    """'Attention is all you need': post-norm, sinusoidal positions, ReLU FFN, √D-scaled shared embeddings."""
    return _t(name=name, vocab_size=vocab, d_model=d, n_layers=layers, max_seq_len=extra.pop("ctx", 512),
              shape="encoder_decoder", embed={"scale": True, "shared": True},
              pos={"kind": "sinusoidal"}, attn={"n_heads": heads}, ffn={"activation": "relu", "d_ff": d_ff},
              norm={"kind": "layernorm", "eps": 1e-6}, block={"norm": "post", "order": ["mixer", "cross", "ffn"]},
              head={"tie": True}, **extra)


register("preset", "gpt2")(lambda: _gpt2("gpt2", 768, 12, 12))
register("preset", "gpt2-medium")(lambda: _gpt2("gpt2-medium", 1024, 24, 16))
register("preset", "gpt2-large")(lambda: _gpt2("gpt2-large", 1280, 36, 20))
register("preset", "gpt2-xl")(lambda: _gpt2("gpt2-xl", 1600, 48, 25))
register("preset", "bert-base")(lambda: _bert("bert-base", 768, 12, 12, mlm=False))
register("preset", "bert-base-mlm")(lambda: _bert("bert-base-mlm", 768, 12, 12, mlm=True))
register("preset", "bert-large")(lambda: _bert("bert-large", 1024, 24, 16, mlm=False))
register("preset", "minilm-l6")(lambda: _bert("minilm-l6", 384, 6, 12, mlm=False))
register("preset", "smollm2-135m")(lambda: _llama("smollm2-135m", 49152, 576, 30, 9, 3, 1536, ctx=8192,
                                                 theta=100000.0, tie=True))
register("preset", "llama2-7b")(lambda: _llama("llama2-7b", 32000, 4096, 32, 32, 32, 11008, ctx=4096))
register("preset", "llama3.2-1b")(lambda: _llama(
    "llama3.2-1b", 128256, 2048, 16, 32, 8, 8192, ctx=131072, theta=500000.0, tie=True,
    pos={"rope_scaling": {"kind": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_seq_len": 8192}}))
# LLaMA blocks at GPT-2-small's width and depth (the train/decode speed benchmarks' second model)
register("preset", "llama-153m")(lambda: _llama("llama-153m", 50304, 768, 12, 12, 4, 2048, ctx=1024))
register("preset", "transformer-base")(lambda: _vaswani("transformer-base", 37000, 512, 6, 8, 2048, dropout=0.1))
register("preset", "transformer-big")(lambda: _vaswani("transformer-big", 37000, 1024, 6, 16, 4096, dropout=0.3))

# tiny models for tests and the CPU demo
register("preset", "gpt-tiny")(lambda: _t(
    name="gpt-tiny", vocab_size=256, d_model=64, n_layers=2, max_seq_len=128, attn={"n_heads": 4},
    ffn={"activation": "gelu_tanh"}))
register("preset", "llama-tiny")(lambda: _llama("llama-tiny", 256, 64, 2, 4, 2, 172, ctx=128))
register("preset", "bert-tiny")(lambda: _bert("bert-tiny", 64, 2, 4, mlm=True, vocab=256, ctx=128))
register("preset", "transformer-tiny")(lambda: _vaswani("transformer-tiny", 256, 64, 2, 4, 128, ctx=128))
# nanoGPT's CPU character-level Shakespeare shape (vocab is set from the tokenizer at train time)
register("preset", "char-gpt")(lambda: _t(
    name="char-gpt", vocab_size=65, d_model=128, n_layers=4, max_seq_len=64, attn={"n_heads": 4},
    ffn={"activation": "gelu"}, head={"tie": True}))
register("preset", "char-llama")(lambda: _llama("char-llama", 65, 128, 4, 4, 2, 344, ctx=64, tie=True))
