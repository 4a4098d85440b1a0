"""GPT-2 (`GPT2LMHeadModel`, `GPT2Model`) <-> archlab decoder.

HF GPT-2 keeps its projections in `Conv1D` modules (y = x·W + b, W of shape (in, out)), the
transpose of `nn.Linear`; and `c_attn` is one fused (D, 3D) projection holding q | k | v.
"""
from __future__ import annotations

from typing import Any

import torch

from archlab.config import from_dict
from archlab.interop.hf_io import (
    ACT_TO_HF,
    ConvertedState,
    InteropError,
    TensorSource,
    act_from_hf,
    cannot_export,
    pad_id,
    require,
)
from archlab.models.transformer_config import TransformerConfig

FAMILY = "GPT-2"
MODEL_TYPE = "gpt2"
ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
PREFIXES = ("transformer.",)
IGNORE = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older checkpoints


def config_from_hf(hf: dict[str, Any], names: set[str]) -> TransformerConfig:
    """archlab config for an HF GPT-2 config.json; unsupported variants raise naming the field."""
    require(hf, FAMILY, "scale_attn_weights", [True], True)
    require(hf, FAMILY, "scale_attn_by_inverse_layer_idx", [False], False)
    require(hf, FAMILY, "reorder_and_upcast_attn", [False], False)
    require(hf, FAMILY, "add_cross_attention", [False], False)
    vocab, d = hf.get("vocab_size", 50257), hf.get("n_embd", 768)
    # a bare GPT2Model still gets the (tied, parameter-free) LM head, so it can generate
    tie = bool(hf.get("tie_word_embeddings", True))
    return from_dict(TransformerConfig, dict(
        name=hf.get("_name_or_path") or "gpt2-hf", vocab_size=vocab, d_model=d, n_layers=hf.get("n_layer", 12),
        max_seq_len=hf.get("n_positions", 1024), shape="decoder", pos={"kind": "learned"},
        attn={"n_heads": hf.get("n_head", 12), "bias": True, "dropout": float(hf.get("attn_pdrop", 0.0))},
        ffn={"activation": act_from_hf(FAMILY, "activation_function", hf.get("activation_function", "gelu_new")),
             "d_ff": hf.get("n_inner") or 4 * d, "bias": True},
        norm={"kind": "layernorm", "eps": float(hf.get("layer_norm_epsilon", 1e-5))},
        block={"norm": "pre", "dropout": float(hf.get("resid_pdrop", 0.0))},
        head={"tie": tie}, dropout=float(hf.get("embd_pdrop", 0.0)),
        init_std=float(hf.get("initializer_range", 0.02)), pad_token_id=pad_id(hf, vocab),
    ))


def convert_from_hf(src: TensorSource, cfg: TransformerConfig) -> tuple[dict, dict]:
    """archlab state dict (and the HF tensor each entry came from)."""
    D, L, F = cfg.d_model, cfg.n_layers, cfg.d_ff
    out = ConvertedState(src)
    state, sources, put = out.state, out.sources, out.set

    put("tok_embed.weight", "wte.weight", src.take("wte.weight", (cfg.vocab_size, D)))
    put("pos_embed.weight", "wpe.weight", src.take("wpe.weight", (cfg.max_seq_len, D)))
    for i in range(L):
        h, a = f"h.{i}.", f"decoder.blocks.{i}."
        for hf_ln, ours in (("ln_1", "mixer"), ("ln_2", "ffn")):
            for p in ("weight", "bias"):
                put(f"{a}norms.{ours}.{p}", f"{h}{hf_ln}.{p}", src.take(f"{h}{hf_ln}.{p}", (D,)))
        w = src.take(f"{h}attn.c_attn.weight", (D, 3 * D)).t()
        b = src.take(f"{h}attn.c_attn.bias", (3 * D,))
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            put(f"{a}sub.mixer.{proj}.weight", f"{h}attn.c_attn.weight", w[j * D:(j + 1) * D].contiguous())
            put(f"{a}sub.mixer.{proj}.bias", f"{h}attn.c_attn.bias", b[j * D:(j + 1) * D].contiguous())
        put(f"{a}sub.mixer.o_proj.weight", f"{h}attn.c_proj.weight", src.take(f"{h}attn.c_proj.weight", (D, D)).t())
        put(f"{a}sub.mixer.o_proj.bias", f"{h}attn.c_proj.bias", src.take(f"{h}attn.c_proj.bias", (D,)))
        put(f"{a}sub.ffn.fc_in.weight", f"{h}mlp.c_fc.weight", src.take(f"{h}mlp.c_fc.weight", (D, F)).t())
        put(f"{a}sub.ffn.fc_in.bias", f"{h}mlp.c_fc.bias", src.take(f"{h}mlp.c_fc.bias", (F,)))
        put(f"{a}sub.ffn.fc_out.weight", f"{h}mlp.c_proj.weight", src.take(f"{h}mlp.c_proj.weight", (F, D)).t())
        put(f"{a}sub.ffn.fc_out.bias", f"{h}mlp.c_proj.bias", src.take(f"{h}mlp.c_proj.bias", (D,)))
    for p in ("weight", "bias"):
        put(f"decoder.final_norm.{p}", f"ln_f.{p}", src.take(f"ln_f.{p}", (D,)))
    if cfg.head.lm:
        if cfg.head.tie:
            if src.has("/lm_head.weight"):  # some exports store the tied copy anyway
                if not torch.equal(src.take("/lm_head.weight"), state["tok_embed.weight"]):
                    raise InteropError(f"{src.where}: lm_head.weight differs from transformer.wte.weight although "
                                     "tie_word_embeddings=true")
        else:
            put("lm_head.weight", "/lm_head.weight", src.take("/lm_head.weight", (cfg.vocab_size, D)))
    return state, sources


def claims(cfg: TransformerConfig) -> bool:
    """Whether an archlab config is GPT-2 shaped (learned positions, LayerNorm, plain FFN decoder)."""
    return cfg.shape == "decoder" and cfg.pos.kind == "learned" and cfg.mixer.kind == "attention"


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF GPT2Config dict for an archlab config; archlab choices GPT-2 lacks raise naming the field."""
    checks = [("shape", cfg.shape, "decoder"), ("pos.kind", cfg.pos.kind, "learned"),
              ("pos.placement", cfg.pos.placement, "embedding"),  # HF adds positions at the embedding
              ("norm.kind", cfg.norm.kind, "layernorm"), ("norm.bias", cfg.norm.bias, True),
              ("block.norm", cfg.block.norm, "pre"), ("block.residual", cfg.block.residual, True),
              ("block.order", list(cfg.block.order), ["mixer", "ffn"]), ("use_final_norm", cfg.use_final_norm, True),
              ("attn.bias", cfg.attn.bias, True), ("attn.out_bias", cfg.attn.out_bias in (None, True), True),
              ("attn.causal", cfg.attn.causal, True), ("attn.scale", cfg.attn.scale, "sqrt_d"),
              ("attn.window", cfg.attn.window, None), ("attn.n_kv_heads", cfg.attn.kv_heads, cfg.attn.n_heads),
              ("attn.head_dim", cfg.head_dim, cfg.d_model // cfg.attn.n_heads), ("ffn.enabled", cfg.ffn.enabled, True),
              ("ffn.bias", cfg.ffn.bias, True), ("embed.scale", cfg.embed.scale, False),
              ("embed.n_segments", cfg.embed.n_segments, 0), ("embed.norm", cfg.embed.norm, False),
              ("head.bias", cfg.head.bias, False), ("head.transform", cfg.head.transform, False),
              ("head.pooler", cfg.head.pooler, False), ("head.lm", cfg.head.lm, True),
              ("mixer.kind", cfg.mixer.kind, "attention"),
              ("mixer.pattern", list(cfg.mixer.pattern), [])]
    for field, value, want in checks:
        if value != want:
            raise cannot_export(FAMILY, field, value, want)
    if cfg.ffn.activation not in ACT_TO_HF:
        raise cannot_export(FAMILY, "ffn.activation", cfg.ffn.activation, sorted(ACT_TO_HF))
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": MODEL_TYPE,
        "vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len, "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers, "n_head": cfg.attn.n_heads, "n_inner": cfg.d_ff,
        "activation_function": ACT_TO_HF[cfg.ffn.activation], "layer_norm_epsilon": cfg.norm.eps,
        "resid_pdrop": cfg.block.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.attn.dropout,
        "initializer_range": cfg.init_std, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": cfg.head.tie, "pad_token_id": cfg.pad_token_id,
        "bos_token_id": None, "eos_token_id": None,
    }


def convert_to_hf(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF tensors under GPT2LMHeadModel names."""
    p = "transformer."
    out = {f"{p}wte.weight": state["tok_embed.weight"], f"{p}wpe.weight": state["pos_embed.weight"]}
    for i in range(cfg.n_layers):
        h, a = f"{p}h.{i}.", f"decoder.blocks.{i}."
        for hf_ln, ours in (("ln_1", "mixer"), ("ln_2", "ffn")):
            for q in ("weight", "bias"):
                out[f"{h}{hf_ln}.{q}"] = state[f"{a}norms.{ours}.{q}"]
        m = f"{a}sub.mixer."
        out[f"{h}attn.c_attn.weight"] = torch.cat([state[f"{m}{x}_proj.weight"] for x in "qkv"]).t()
        out[f"{h}attn.c_attn.bias"] = torch.cat([state[f"{m}{x}_proj.bias"] for x in "qkv"])
        out[f"{h}attn.c_proj.weight"] = state[f"{m}o_proj.weight"].t()
        out[f"{h}attn.c_proj.bias"] = state[f"{m}o_proj.bias"]
        out[f"{h}mlp.c_fc.weight"] = state[f"{a}sub.ffn.fc_in.weight"].t()
        out[f"{h}mlp.c_fc.bias"] = state[f"{a}sub.ffn.fc_in.bias"]
        out[f"{h}mlp.c_proj.weight"] = state[f"{a}sub.ffn.fc_out.weight"].t()
        out[f"{h}mlp.c_proj.bias"] = state[f"{a}sub.ffn.fc_out.bias"]
    for q in ("weight", "bias"):
        out[f"{p}ln_f.{q}"] = state[f"decoder.final_norm.{q}"]
    if not cfg.head.tie:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out
