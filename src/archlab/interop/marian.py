"""Marian (`MarianMTModel`) <-> archlab encoder-decoder: the original Transformer design.

Sinusoidal positions in the split sin | cos layout, post-norm, embeddings scaled by √D, shared
source/target/output embeddings, `final_logits_bias` → archlab head.bias. Generation starts from
`decoder_start_token_id` (the pad id in the published Marian checkpoints, but any id is kept: the
imported one is carried in `model.hf_meta` and written back on export).
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
    unsupported,
)
from archlab.models.transformer_config import TransformerConfig
from archlab.nn.position import sinusoidal_table

FAMILY = "Marian"
MODEL_TYPE = "marian"
ARCHITECTURES = ("MarianMTModel", "MarianModel")
PREFIXES = ("model.",)
IGNORE = ()


def config_from_hf(hf: dict[str, Any], names: set[str]) -> TransformerConfig:
    """archlab config for an HF Marian config.json; unsupported variants raise naming the field."""
    # BART/mBART-style variants a Marian config.json may carry; archlab's Marian is post-norm without them
    for field in ("normalize_before", "add_final_layer_norm", "normalize_embedding", "layernorm_embedding"):
        if hf.get(field):
            raise unsupported(FAMILY, field, hf[field], False)
    # an odd d_model is fine: nn.position's split sinusoid then has ⌈D/2⌉ sine and ⌊D/2⌋ cosine columns, as
    # transformers' MarianSinusoidalPositionalEmbedding
    d_model = hf.get("d_model", 1024)
    vocab = hf.get("vocab_size", 58101)
    require(hf, FAMILY, "decoder_vocab_size", [vocab, None], vocab)
    heads = require(hf, FAMILY, "decoder_attention_heads", [hf.get("encoder_attention_heads", 16)],
                    hf.get("encoder_attention_heads", 16))
    d_ff = require(hf, FAMILY, "decoder_ffn_dim", [hf.get("encoder_ffn_dim", 4096)], hf.get("encoder_ffn_dim", 4096))
    act = act_from_hf(FAMILY, "activation_function", hf.get("activation_function", "gelu"))
    drop = float(hf.get("dropout", 0.0))
    pad = pad_id(hf, vocab)
    tie = bool(hf.get("tie_word_embeddings", True))
    # transformers 5 ties Marian's encoder/decoder embeddings to `shared` only together with the LM head: with
    # share_encoder_decoder_embeddings=true and tie_word_embeddings=false the three tables are independent
    # (the forward pass reads encoder.embed_tokens and decoder.embed_tokens), so archlab keeps two tables
    shared = bool(hf.get("share_encoder_decoder_embeddings", True)) and tie
    return from_dict(TransformerConfig, dict(
        name=hf.get("_name_or_path") or "marian-hf", vocab_size=vocab, d_model=d_model,
        n_layers=hf.get("encoder_layers", 12), n_decoder_layers=hf.get("decoder_layers", 12),
        max_seq_len=hf.get("max_position_embeddings", 1024), shape="encoder_decoder",
        embed={"scale": bool(hf.get("scale_embedding", False)),
               "shared": shared},
        pos={"kind": "sinusoidal", "sinusoidal_layout": "split"},
        attn={"n_heads": heads, "bias": True, "dropout": float(hf.get("attention_dropout", 0.0))},
        ffn={"activation": act, "d_ff": d_ff, "bias": True},
        norm={"kind": "layernorm", "eps": 1e-5}, block={"norm": "post", "order": ["mixer", "cross", "ffn"],
                                                        "dropout": drop},
        head={"tie": tie, "bias": True}, dropout=drop,
        init_std=float(hf.get("init_std", 0.02)), pad_token_id=pad,
    ))


def _layer_map(cross: bool) -> list[tuple[str, str]]:
    pairs = [("self_attn", "sub.mixer"), ("self_attn_layer_norm", "norms.mixer")]
    if cross:
        pairs += [("encoder_attn", "sub.cross"), ("encoder_attn_layer_norm", "norms.cross")]
    return pairs + [("fc1", "sub.ffn.fc_in"), ("fc2", "sub.ffn.fc_out"), ("final_layer_norm", "norms.ffn")]


def convert_from_hf(src: TensorSource, cfg: TransformerConfig) -> tuple[dict, dict]:
    """archlab state dict (and the HF tensor each entry came from)."""
    D, F, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
    out = ConvertedState(src)
    state, sources, put, linear = out.state, out.sources, out.put, out.linear

    lm_alias = ["/lm_head.weight"] if cfg.head.tie else []
    if cfg.embed.shared:
        names = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", *lm_alias]
        state["tok_embed.weight"] = src.take_first(names, (V, D))
        sources["tok_embed.weight"] = src.full("shared.weight")
    else:  # separate tables; `shared.weight` (transformers 5, untied) is unused by the forward pass when both exist
        shared = src.take("shared.weight", (V, D)) if src.has("shared.weight") else None
        for ours, stack, alias in (("tok_embed", "encoder", []), ("tgt_embed", "decoder", lm_alias)):
            name = f"{stack}.embed_tokens.weight"
            if src.has(name) or shared is None:
                state[f"{ours}.weight"] = src.take_first([name, *alias], (V, D))
                sources[f"{ours}.weight"] = src.full(name)
            else:
                state[f"{ours}.weight"], sources[f"{ours}.weight"] = shared, src.full("shared.weight")
    shapes = {"self_attn": (D, D), "encoder_attn": (D, D), "fc1": (F, D), "fc2": (D, F)}
    for stack, n, cross in (("encoder", cfg.n_layers, False), ("decoder", cfg.decoder_layers, True)):
        for i in range(n):
            h, a = f"{stack}.layers.{i}.", f"{stack}.blocks.{i}."
            for theirs, ours in _layer_map(cross):
                if theirs.endswith("layer_norm"):
                    linear(f"{a}{ours}", f"{h}{theirs}", (D,))
                elif theirs.endswith("attn"):
                    for p, q in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj"),
                                 ("out_proj", "o_proj")):
                        linear(f"{a}{ours}.{q}", f"{h}{theirs}.{p}", shapes[theirs])
                else:
                    linear(f"{a}{ours}", f"{h}{theirs}", shapes[theirs])
    for stack in ("encoder", "decoder"):  # older exports store the fixed sinusoid table: it must be that table
        name = f"{stack}.embed_positions.weight"
        if src.has(name):
            table = src.take(name)
            want = sinusoidal_table(table.shape[0], D, "split")
            if table.shape != want.shape or not torch.allclose(table.float(), want, atol=1e-4):
                raise InteropError(f"tensor {src.full(name)!r} in {src.where} is not the split sin|cos sinusoid "
                                   "table archlab computes; learned positions are not supported for Marian")
    if not cfg.head.tie:
        put("lm_head.weight", "/lm_head.weight", (V, D))
    if src.has("/final_logits_bias"):
        state["lm_head.bias"] = src.take("/final_logits_bias", (1, V))[0]
        sources["lm_head.bias"] = "final_logits_bias"
    else:  # MarianModel (no LM head) or a checkpoint saved without the all-zero buffer
        state["lm_head.bias"] = torch.zeros(V)
        sources["lm_head.bias"] = "final_logits_bias"
    return state, sources


def claims(cfg: TransformerConfig) -> bool:
    """Whether an archlab config is an encoder-decoder (Marian is the only one archlab exports)."""
    return cfg.shape == "encoder_decoder"


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF MarianConfig dict for an archlab config; archlab choices Marian lacks raise naming the field."""
    a = cfg.attn
    checks = [("pos.kind", cfg.pos.kind, "sinusoidal"),
              ("pos.sinusoidal_layout", cfg.pos.sinusoidal_layout, "split"),
              ("pos.placement", cfg.pos.placement, "embedding"),  # HF adds positions at the embedding
              ("norm.kind", cfg.norm.kind, "layernorm"), ("norm.bias", cfg.norm.bias, True),
              ("norm.eps", cfg.norm.eps, 1e-5), ("block.norm", cfg.block.norm, "post"),
              ("block.residual", cfg.block.residual, True),
              ("block.order", list(cfg.block.order), ["mixer", "cross", "ffn"]),
              ("block.decoder_order", cfg.block.decoder_order, None),
              ("use_final_norm", cfg.use_final_norm, False), ("attn.bias", a.bias, True),
              ("attn.out_bias", a.out_bias in (None, True), True), ("attn.n_kv_heads", a.kv_heads, a.n_heads),
              ("attn.head_dim", cfg.head_dim, cfg.d_model // a.n_heads), ("attn.causal", a.causal, True),
              ("attn.scale", a.scale, "sqrt_d"), ("attn.window", a.window, None),
              ("ffn.enabled", cfg.ffn.enabled, True), ("ffn.bias", cfg.ffn.bias, True),
              ("embed.n_segments", cfg.embed.n_segments, 0), ("embed.norm", cfg.embed.norm, False),
              ("head.lm", cfg.head.lm, True), ("head.transform", cfg.head.transform, False),
              ("head.pooler", cfg.head.pooler, False)]
    for field, value, want in checks:
        if value != want:
            raise cannot_export(FAMILY, field, value, want)
    if cfg.ffn.activation not in ACT_TO_HF:
        raise cannot_export(FAMILY, "ffn.activation", cfg.ffn.activation, sorted(ACT_TO_HF))
    if cfg.pad_token_id is None:
        raise cannot_export(FAMILY, "pad_token_id", None, "a token id (Marian starts decoding from the pad token)")
    act = "swish" if cfg.ffn.activation == "silu" else ACT_TO_HF[cfg.ffn.activation]
    return {
        "architectures": ["MarianMTModel"], "model_type": MODEL_TYPE, "vocab_size": cfg.vocab_size,
        "decoder_vocab_size": cfg.vocab_size, "d_model": cfg.d_model, "encoder_layers": cfg.n_layers,
        "decoder_layers": cfg.decoder_layers, "encoder_attention_heads": a.n_heads,
        "decoder_attention_heads": a.n_heads, "encoder_ffn_dim": cfg.d_ff, "decoder_ffn_dim": cfg.d_ff,
        "activation_function": act, "max_position_embeddings": cfg.max_seq_len,
        "scale_embedding": cfg.embed.scale, "share_encoder_decoder_embeddings": cfg.embed.shared,
        "tie_word_embeddings": cfg.head.tie, "dropout": cfg.block.dropout, "attention_dropout": a.dropout,
        "activation_dropout": 0.0, "init_std": cfg.init_std, "pad_token_id": cfg.pad_token_id,
        "decoder_start_token_id": cfg.pad_token_id, "eos_token_id": None, "forced_eos_token_id": None,
        "bos_token_id": None, "is_encoder_decoder": True,
    }


def convert_to_hf(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF tensors under MarianMTModel names (one copy of each tied embedding)."""
    out: dict[str, torch.Tensor] = {}
    if cfg.embed.shared:
        out["model.shared.weight"] = state["tok_embed.weight"]
        if not cfg.head.tie:  # transformers 5 ties encoder/decoder tables to `shared` only when the head is tied
            out["model.encoder.embed_tokens.weight"] = state["tok_embed.weight"]
            out["model.decoder.embed_tokens.weight"] = state["tok_embed.weight"]
    else:
        out["model.encoder.embed_tokens.weight"] = state["tok_embed.weight"]
        out["model.decoder.embed_tokens.weight"] = state["tgt_embed.weight"]
    for stack, n, cross in (("encoder", cfg.n_layers, False), ("decoder", cfg.decoder_layers, True)):
        for i in range(n):
            h, a = f"model.{stack}.layers.{i}.", f"{stack}.blocks.{i}."
            for theirs, ours in _layer_map(cross):
                if theirs.endswith("attn"):
                    for p, q in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj"),
                                 ("out_proj", "o_proj")):
                        for x in ("weight", "bias"):
                            out[f"{h}{theirs}.{p}.{x}"] = state[f"{a}{ours}.{q}.{x}"]
                else:
                    for x in ("weight", "bias"):
                        out[f"{h}{theirs}.{x}"] = state[f"{a}{ours}.{x}"]
    if not cfg.head.tie:
        out["lm_head.weight"] = state["lm_head.weight"]
    bias = state.get("lm_head.bias")
    out["final_logits_bias"] = (bias if bias is not None else torch.zeros(cfg.vocab_size))[None]
    return out

