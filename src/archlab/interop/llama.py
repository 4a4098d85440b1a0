"""LLaMA (`LlamaForCausalLM`, `LlamaModel`) <-> archlab decoder: RoPE, RMSNorm, SwiGLU, GQA.

archlab's gated FFN is fc_out(act(fc_gate x) ⊙ fc_in x), so gate_proj = fc_gate, up_proj = fc_in,
down_proj = fc_out. HF's RoPE rotates halves (x_i, x_{i+d/2}), which is archlab's layout too, so
q/k weights map over unpermuted.
"""
from __future__ import annotations

from typing import Any

import torch

from archlab.config import from_dict
from archlab.interop.hf_io import (
    ConvertedState,
    InteropError,
    TensorSource,
    act_from_hf,
    cannot_export,
    has_lm_head,
    pad_id,
    require,
    unsupported,
)
from archlab.models.transformer_config import TransformerConfig

FAMILY = "LLaMA"
MODEL_TYPE = "llama"
ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
PREFIXES = ("model.",)
IGNORE = ("rotary_emb.inv_freq",)
GATED_FROM_HF = {"silu": "swiglu", "gelu": "geglu", "relu": "reglu"}
GATED_TO_HF = {v: k for k, v in GATED_FROM_HF.items()}


def rope_params_from_hf(hf: dict[str, Any], family: str = FAMILY) -> tuple[str, dict[str, Any]]:
    """(the config field that decides, the RoPE parameters) resolved exactly as transformers 5 does.

    transformers (`RotaryEmbeddingConfigMixin.convert_rope_params_to_dict` + `standardize_rope_params`):
    `rope_parameters = rope_scaling or rope_parameters`, so a non-empty `rope_scaling` replaces `rope_parameters`
    wholesale (its `rope_theta` included), whatever their order in config.json; then `rope_theta` is the chosen
    dict's, else the top-level `rope_theta`, else 10000; `rope_type` is its `rope_type`, else its legacy `type`,
    else "default"; `partial_rotary_factor` likewise falls back to the top-level key; for llama3 a missing
    `original_max_position_embeddings` is `max_position_embeddings`.
    """
    scaling, params = hf.get("rope_scaling"), hf.get("rope_parameters")
    field, chosen = ("rope_scaling", scaling) if scaling else ("rope_parameters", params or {})
    if not isinstance(chosen, dict):
        raise InteropError(f"{family} config field {field!r} must be a JSON object (rope_type, factor, ...), "
                           f"got {chosen!r}")
    out = dict(chosen)
    out.setdefault("rope_theta", hf.get("rope_theta", 10000.0))
    out.setdefault("rope_type", out.get("type", "default"))
    if "partial_rotary_factor" in hf:
        out.setdefault("partial_rotary_factor", hf["partial_rotary_factor"])
    if out["rope_type"] in ("llama3", "yarn", "longrope"):
        out.setdefault("original_max_position_embeddings", hf.get("max_position_embeddings", 2048))
    return field, out


def rope_from_hf(hf: dict[str, Any], family: str = FAMILY) -> dict[str, Any]:
    """archlab `pos` section from HF rope_parameters (transformers 5) / rope_theta + rope_scaling (4.x), both
    present resolved as transformers resolves them (`rope_params_from_hf`)."""
    field, params = rope_params_from_hf(hf, family)
    kind, theta = params["rope_type"], params["rope_theta"]
    prf = params.get("partial_rotary_factor", 1.0)
    if prf != 1.0:
        raise unsupported(family, "partial_rotary_factor", prf, 1.0)
    pos: dict[str, Any] = {"kind": "rope", "rope_theta": float(theta)}
    try:
        if kind == "linear":
            pos["rope_scaling"] = {"kind": "linear", "factor": float(params["factor"])}
        elif kind == "llama3":
            pos["rope_scaling"] = {"kind": "llama3", "factor": float(params["factor"]),
                                   "low_freq_factor": float(params["low_freq_factor"]),
                                   "high_freq_factor": float(params["high_freq_factor"]),
                                   "original_max_seq_len": int(params["original_max_position_embeddings"])}
        elif kind != "default":
            raise unsupported(family, f"{field}.rope_type", kind, ["default", "linear", "llama3"])
    except KeyError as e:
        raise InteropError(f"{family} config field {field!r} with rope_type {kind!r} lacks {e.args[0]!r}") from None
    return pos


def rope_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF `rope_parameters` for an archlab RoPE config."""
    s = cfg.pos.rope_scaling
    out: dict[str, Any] = {"rope_theta": cfg.pos.rope_theta, "rope_type": "default"}
    if s.kind == "linear":
        out.update(rope_type="linear", factor=s.factor)
    elif s.kind == "llama3":
        out.update(rope_type="llama3", factor=s.factor, low_freq_factor=s.low_freq_factor,
                   high_freq_factor=s.high_freq_factor, original_max_position_embeddings=s.original_max_seq_len)
    return out


def config_from_hf(hf: dict[str, Any], names: set[str]) -> TransformerConfig:
    """archlab config for an HF LLaMA config.json; unsupported variants raise naming the field."""
    require(hf, FAMILY, "pretraining_tp", [1, None], 1)
    act = hf.get("hidden_act", "silu")
    if act not in GATED_FROM_HF:
        raise unsupported(FAMILY, "hidden_act", act, sorted(GATED_FROM_HF))
    act_from_hf(FAMILY, "hidden_act", act)
    vocab, d, heads = hf.get("vocab_size", 32000), hf.get("hidden_size", 4096), hf.get("num_attention_heads", 32)
    head_dim = hf.get("head_dim") or d // heads
    bias = bool(hf.get("attention_bias", False))
    tie = bool(hf.get("tie_word_embeddings", False))
    has_lm = has_lm_head(names, tie)
    return from_dict(TransformerConfig, dict(
        name=hf.get("_name_or_path") or "llama-hf", vocab_size=vocab, d_model=d,
        n_layers=hf.get("num_hidden_layers", 32), max_seq_len=hf.get("max_position_embeddings", 2048),
        shape="decoder", pos=rope_from_hf(hf),
        attn={"n_heads": heads, "n_kv_heads": hf.get("num_key_value_heads") or heads,
              "head_dim": None if head_dim * heads == d else head_dim, "bias": bias, "out_bias": bias,
              "dropout": float(hf.get("attention_dropout") or 0.0)},
        ffn={"activation": GATED_FROM_HF[act], "d_ff": hf.get("intermediate_size", 11008),
             "bias": bool(hf.get("mlp_bias", False))},
        norm={"kind": "rmsnorm", "eps": float(hf.get("rms_norm_eps", 1e-6)), "bias": False},
        block={"norm": "pre"}, head={"tie": tie, "lm": has_lm},
        init_std=float(hf.get("initializer_range", 0.02)), pad_token_id=pad_id(hf, vocab),
    ))


def convert_from_hf(src: TensorSource, cfg: TransformerConfig) -> tuple[dict, dict]:
    """archlab state dict (and the HF tensor each entry came from)."""
    D, F, hd = cfg.d_model, cfg.d_ff, cfg.head_dim
    H, KV = cfg.attn.n_heads, cfg.attn.kv_heads
    out = ConvertedState(src)
    state, sources, put = out.state, out.sources, out.put

    put("tok_embed.weight", "embed_tokens.weight", (cfg.vocab_size, D))
    shapes = {"q_proj": (H * hd, D), "k_proj": (KV * hd, D), "v_proj": (KV * hd, D), "o_proj": (D, H * hd)}
    for i in range(cfg.n_layers):
        h, a = f"layers.{i}.", f"decoder.blocks.{i}."
        put(f"{a}norms.mixer.weight", f"{h}input_layernorm.weight", (D,))
        put(f"{a}norms.ffn.weight", f"{h}post_attention_layernorm.weight", (D,))
        for proj, shape in shapes.items():
            put(f"{a}sub.mixer.{proj}.weight", f"{h}self_attn.{proj}.weight", shape)
            if cfg.attn.bias if proj != "o_proj" else cfg.attn.out_bias:
                put(f"{a}sub.mixer.{proj}.bias", f"{h}self_attn.{proj}.bias", shape[:1])
        for hf_name, ours, shape in (("gate_proj", "fc_gate", (F, D)), ("up_proj", "fc_in", (F, D)),
                                     ("down_proj", "fc_out", (D, F))):
            put(f"{a}sub.ffn.{ours}.weight", f"{h}mlp.{hf_name}.weight", shape)
            if cfg.ffn.bias:
                put(f"{a}sub.ffn.{ours}.bias", f"{h}mlp.{hf_name}.bias", shape[:1])
    put("decoder.final_norm.weight", "norm.weight", (D,))
    if not cfg.head.lm:
        pass
    elif cfg.head.tie:
        if src.has("/lm_head.weight") and not torch.equal(src.take("/lm_head.weight"), state["tok_embed.weight"]):
            raise InteropError(f"{src.where}: lm_head.weight differs from model.embed_tokens.weight although "
                               "tie_word_embeddings=true")
    else:
        put("lm_head.weight", "/lm_head.weight", (cfg.vocab_size, D))
    return state, sources


def claims(cfg: TransformerConfig) -> bool:
    """Whether an archlab config is LLaMA shaped (RoPE decoder)."""
    return cfg.shape == "decoder" and cfg.pos.kind == "rope" and cfg.mixer.kind == "attention"


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF LlamaConfig dict for an archlab config; archlab choices LLaMA lacks raise naming the field."""
    a = cfg.attn
    out_bias = a.bias if a.out_bias is None else a.out_bias
    checks = [("shape", cfg.shape, "decoder"), ("pos.kind", cfg.pos.kind, "rope"),
              ("norm.kind", cfg.norm.kind, "rmsnorm"), ("block.norm", cfg.block.norm, "pre"),
              ("block.residual", cfg.block.residual, True), ("block.order", list(cfg.block.order), ["mixer", "ffn"]),
              ("use_final_norm", cfg.use_final_norm, True), ("attn.out_bias", out_bias, a.bias),
              ("attn.causal", a.causal, True), ("attn.scale", a.scale, "sqrt_d"), ("attn.window", a.window, None),
              ("ffn.enabled", cfg.ffn.enabled, True),
              ("embed.scale", cfg.embed.scale, False), ("embed.n_segments", cfg.embed.n_segments, 0),
              ("embed.norm", cfg.embed.norm, False), ("head.bias", cfg.head.bias, False),
              ("head.transform", cfg.head.transform, False), ("head.pooler", cfg.head.pooler, False),
              ("mixer.pattern", list(cfg.mixer.pattern), [])]
    for field, value, want in checks:
        if value != want:
            raise cannot_export(FAMILY, field, value, want)
    if cfg.ffn.activation not in GATED_TO_HF:
        raise cannot_export(FAMILY, "ffn.activation", cfg.ffn.activation, sorted(GATED_TO_HF))
    return {
        "architectures": ["LlamaForCausalLM" if cfg.head.lm else "LlamaModel"], "model_type": MODEL_TYPE,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": a.n_heads, "num_key_value_heads": a.kv_heads, "head_dim": cfg.head_dim,
        "hidden_act": GATED_TO_HF[cfg.ffn.activation], "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm.eps, "rope_parameters": rope_to_hf(cfg), "attention_bias": a.bias,
        "attention_dropout": a.dropout, "mlp_bias": cfg.ffn.bias, "tie_word_embeddings": cfg.head.tie,
        "initializer_range": cfg.init_std, "pad_token_id": cfg.pad_token_id, "bos_token_id": None,
        "eos_token_id": None, "pretraining_tp": 1,
    }


def convert_to_hf(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF tensors under LlamaForCausalLM names (lm_head.weight only when untied), or LlamaModel names."""
    pre = "model." if cfg.head.lm else ""
    out = {f"{pre}embed_tokens.weight": state["tok_embed.weight"]}
    for i in range(cfg.n_layers):
        h, a = f"{pre}layers.{i}.", f"decoder.blocks.{i}."
        out[f"{h}input_layernorm.weight"] = state[f"{a}norms.mixer.weight"]
        out[f"{h}post_attention_layernorm.weight"] = state[f"{a}norms.ffn.weight"]
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            for p in ("weight", "bias"):
                if f"{a}sub.mixer.{proj}.{p}" in state:
                    out[f"{h}self_attn.{proj}.{p}"] = state[f"{a}sub.mixer.{proj}.{p}"]
        for hf_name, ours in (("gate_proj", "fc_gate"), ("up_proj", "fc_in"), ("down_proj", "fc_out")):
            for p in ("weight", "bias"):
                if f"{a}sub.ffn.{ours}.{p}" in state:
                    out[f"{h}mlp.{hf_name}.{p}"] = state[f"{a}sub.ffn.{ours}.{p}"]
    out[f"{pre}norm.weight"] = state["decoder.final_norm.weight"]
    if cfg.head.lm and not cfg.head.tie:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out
