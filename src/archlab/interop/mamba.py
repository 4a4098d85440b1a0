"""Mamba (`MambaForCausalLM`, `MambaModel`) <-> archlab decoder with mixer.kind=mamba.

archlab's Mamba mixer uses transformers' parameter names (in_proj, conv1d, x_proj, dt_proj, A_log,
D, out_proj), so each mixer tensor maps over as is; the shell supplies the per-layer RMSNorm
(`norm` → norms.mixer), the final RMSNorm (`norm_f`) and the tied LM head. HF's `hidden_act` acts after
conv1d only (mixer.ssm.activation); the gate is SiLU whatever `hidden_act` says (mixer.ssm.gate_activation
= silu, the only value that exports). `attention_mask` zeroes padded positions as in HF (nn/mamba.py).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from archlab.config import from_dict
from archlab.interop.hf_io import ConvertedState, InteropError, TensorSource, cannot_export, pad_id, unsupported
from archlab.models.transformer_config import TransformerConfig

FAMILY = "Mamba"
MODEL_TYPE = "mamba"
ARCHITECTURES = ("MambaForCausalLM", "MambaModel")
PREFIXES = ("backbone.",)
IGNORE = ()
ACTS = {"silu": "silu", "swish": "silu", "relu": "relu", "gelu": "gelu"}
MIXER_TENSORS = ("in_proj.weight", "in_proj.bias", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                 "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight", "out_proj.bias")


def config_from_hf(hf: dict[str, Any], names: set[str]) -> TransformerConfig:
    """archlab config for an HF Mamba config.json; unsupported variants raise naming the field."""
    act = hf.get("hidden_act", "silu")
    if act not in ACTS:
        raise unsupported(FAMILY, "hidden_act", act, sorted(ACTS))
    vocab, d = hf.get("vocab_size", 50280), hf.get("hidden_size", 768)
    expand = hf.get("expand", 2)
    inter = hf.get("intermediate_size")
    if inter is not None and inter != int(expand * d):
        raise unsupported(FAMILY, "intermediate_size", inter, int(expand * d))
    if int(expand * d) != expand * d or not isinstance(expand, int):
        raise unsupported(FAMILY, "expand", expand, "an integer")
    rank = hf.get("time_step_rank", "auto")
    rank = math.ceil(d / 16) if rank == "auto" else int(rank)
    return from_dict(TransformerConfig, dict(
        name=hf.get("_name_or_path") or "mamba-hf", vocab_size=vocab, d_model=d,
        n_layers=hf.get("num_hidden_layers", 32), max_seq_len=int(hf.get("max_seq_len", 65536)),
        pos={"kind": "none"}, ffn={"enabled": False},
        norm={"kind": "rmsnorm", "eps": float(hf.get("layer_norm_epsilon", 1e-5))},
        block={"norm": "pre", "order": ["mixer"]}, head={"tie": bool(hf.get("tie_word_embeddings", True))},
        mixer={"kind": "mamba", "ssm": {
            "d_state": hf.get("state_size", 16), "d_conv": hf.get("conv_kernel", 4), "expand": expand,
            "dt_rank": rank, "activation": ACTS[act], "gate_activation": "silu",
            "conv_bias": bool(hf.get("use_conv_bias", True)),
            "bias": bool(hf.get("use_bias", False)), "dt_min": float(hf.get("time_step_min", 0.001)),
            "dt_max": float(hf.get("time_step_max", 0.1)), "dt_init_floor": float(hf.get("time_step_floor", 1e-4))}},
        init_std=0.02, pad_token_id=pad_id(hf, vocab),
    ))


def _mixer_shapes(cfg: TransformerConfig) -> dict[str, tuple[int, ...] | None]:
    s, D = cfg.mixer.ssm, cfg.d_model
    E, R, N, K = s.expand * D, s.dt_rank or math.ceil(D / 16), s.d_state, s.d_conv
    return {"in_proj.weight": (2 * E, D), "in_proj.bias": (2 * E,) if s.bias else None,
            "conv1d.weight": (E, 1, K), "conv1d.bias": (E,) if s.conv_bias else None,
            "x_proj.weight": (R + 2 * N, E), "dt_proj.weight": (E, R), "dt_proj.bias": (E,),
            "A_log": (E, N), "D": (E,), "out_proj.weight": (D, E), "out_proj.bias": (D,) if s.bias else None}


def convert_from_hf(src: TensorSource, cfg: TransformerConfig) -> tuple[dict, dict]:
    """archlab state dict (and the HF tensor each entry came from)."""
    D = cfg.d_model
    out = ConvertedState(src)
    state, sources, put = out.state, out.sources, out.put

    put("tok_embed.weight", "embeddings.weight", (cfg.vocab_size, D))
    shapes = _mixer_shapes(cfg)
    for i in range(cfg.n_layers):
        h, a = f"layers.{i}.", f"decoder.blocks.{i}."
        put(f"{a}norms.mixer.weight", f"{h}norm.weight", (D,))
        for t, shape in shapes.items():
            if shape is not None:
                put(f"{a}sub.mixer.{t}", f"{h}mixer.{t}", shape)
    put("decoder.final_norm.weight", "norm_f.weight", (D,))
    if cfg.head.tie:
        if src.has("/lm_head.weight") and not torch.equal(src.take("/lm_head.weight"), state["tok_embed.weight"]):
            raise InteropError(f"{src.where}: lm_head.weight differs from backbone.embeddings.weight although "
                               "tie_word_embeddings=true")
    else:
        put("lm_head.weight", "/lm_head.weight", (cfg.vocab_size, D))
    return state, sources


def claims(cfg: TransformerConfig) -> bool:
    """Whether an archlab config is a Mamba LM (every layer a Mamba mixer)."""
    return cfg.shape == "decoder" and cfg.mixer.kind == "mamba"


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF MambaConfig dict for an archlab config; archlab choices HF Mamba lacks raise naming the field."""
    s = cfg.mixer.ssm
    checks = [("shape", cfg.shape, "decoder"), ("mixer.kind", cfg.mixer.kind, "mamba"),
              ("mixer.pattern", list(cfg.mixer.pattern), []), ("pos.kind", cfg.pos.kind, "none"),
              ("ffn.enabled", cfg.ffn.enabled, False), ("norm.kind", cfg.norm.kind, "rmsnorm"),
              ("block.norm", cfg.block.norm, "pre"), ("block.residual", cfg.block.residual, True),
              ("block.order", list(cfg.block.order), ["mixer"]), ("use_final_norm", cfg.use_final_norm, True),
              ("embed.scale", cfg.embed.scale, False), ("embed.n_segments", cfg.embed.n_segments, 0),
              ("embed.norm", cfg.embed.norm, False), ("head.lm", cfg.head.lm, True),
              ("head.bias", cfg.head.bias, False),
              ("head.transform", cfg.head.transform, False), ("head.pooler", cfg.head.pooler, False),
              ("mixer.ssm.selective", sorted(s.selective), sorted(("delta", "B", "C"))),
              ("mixer.ssm.conv", s.conv, True), ("mixer.ssm.gate", s.gate, True),
              ("mixer.ssm.gate_activation", s.gate_activation, "silu"),  # HF gates with SiLU whatever hidden_act
              ("mixer.ssm.ssm", s.ssm, True), ("mixer.ssm.activation_position", s.activation_position, "after_conv"),
              ("mixer.ssm.conv_kind", s.conv_kind, "conv")]  # seed 000's variants: none exists in HF Mamba
    for field, value, want in checks:
        if value != want:
            raise cannot_export(FAMILY, field, value, want)
    if s.activation not in ("silu", "relu", "gelu"):
        raise cannot_export(FAMILY, "mixer.ssm.activation", s.activation, ["silu", "relu", "gelu"])
    return {
        "architectures": ["MambaForCausalLM"], "model_type": MODEL_TYPE, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "state_size": s.d_state, "num_hidden_layers": cfg.n_layers,
        "layer_norm_epsilon": cfg.norm.eps, "expand": s.expand, "conv_kernel": s.d_conv, "use_bias": s.bias,
        "use_conv_bias": s.conv_bias, "hidden_act": s.activation,
        "time_step_rank": s.dt_rank or math.ceil(cfg.d_model / 16),
        "time_step_min": s.dt_min, "time_step_max": s.dt_max, "time_step_floor": s.dt_init_floor,
        "intermediate_size": s.expand * cfg.d_model, "tie_word_embeddings": cfg.head.tie,
        "pad_token_id": cfg.pad_token_id, "bos_token_id": None, "eos_token_id": None,
    }


def convert_to_hf(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF tensors under MambaForCausalLM names (lm_head.weight only when untied)."""
    out = {"backbone.embeddings.weight": state["tok_embed.weight"]}
    for i in range(cfg.n_layers):
        h, a = f"backbone.layers.{i}.", f"decoder.blocks.{i}."
        out[f"{h}norm.weight"] = state[f"{a}norms.mixer.weight"]
        for t in MIXER_TENSORS:
            if f"{a}sub.mixer.{t}" in state:
                out[f"{h}mixer.{t}"] = state[f"{a}sub.mixer.{t}"]
    out["backbone.norm_f.weight"] = state["decoder.final_norm.weight"]
    if not cfg.head.tie:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out
