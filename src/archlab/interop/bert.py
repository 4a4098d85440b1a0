"""BERT (`BertModel`, `BertForMaskedLM`, `BertForSequenceClassification`) <-> archlab encoder.

Which heads exist is read from the checkpoint: `cls.predictions.*` is the masked-LM head
(transform + decoder tied to the word embeddings + output bias → archlab head.bias),
`pooler.dense` the tanh pooler, `classifier` the sequence-classification layer.
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

FAMILY = "BERT"
MODEL_TYPE = "bert"
ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
PREFIXES = ("bert.",)
IGNORE = ("embeddings.position_ids", "embeddings.token_type_ids")  # index buffers, not weights


def _has(names: set[str], name: str) -> bool:
    return name in names or f"bert.{name}" in names


def config_from_hf(hf: dict[str, Any], names: set[str]) -> TransformerConfig:
    """archlab config for an HF BERT config.json (+ the checkpoint's tensor names, which reveal the heads)."""
    require(hf, FAMILY, "position_embedding_type", ["absolute"], "absolute")
    require(hf, FAMILY, "is_decoder", [False], False)
    require(hf, FAMILY, "add_cross_attention", [False], False)
    arch = (hf.get("architectures") or [None])[0]
    vocab, d = hf.get("vocab_size", 30522), hf.get("hidden_size", 768)
    mlm = arch == "BertForMaskedLM" or "cls.predictions.transform.dense.weight" in names
    cls = arch == "BertForSequenceClassification" or "classifier.weight" in names
    n_classes = 0
    if cls:
        n_classes = hf.get("num_labels") or len(hf.get("id2label") or {}) or 2
    pooler = cls or (_has(names, "pooler.dense.weight") if names else arch == "BertModel")
    act = act_from_hf(FAMILY, "hidden_act", hf.get("hidden_act", "gelu"))
    hidden_drop = float(hf.get("hidden_dropout_prob", 0.0))
    return from_dict(TransformerConfig, dict(
        name=hf.get("_name_or_path") or "bert-hf", vocab_size=vocab, d_model=d,
        n_layers=hf.get("num_hidden_layers", 12),
        max_seq_len=hf.get("max_position_embeddings", 512), shape="encoder",
        embed={"n_segments": hf.get("type_vocab_size", 2), "norm": True}, pos={"kind": "learned"},
        attn={"n_heads": hf.get("num_attention_heads", 12), "bias": True, "causal": False,
              "dropout": float(hf.get("attention_probs_dropout_prob", 0.0))},
        ffn={"activation": act, "d_ff": hf.get("intermediate_size", 3072), "bias": True},
        norm={"kind": "layernorm", "eps": float(hf.get("layer_norm_eps", 1e-12))},
        block={"norm": "post", "dropout": hidden_drop}, dropout=hidden_drop,
        head={"lm": mlm, "tie": bool(hf.get("tie_word_embeddings", True)), "bias": mlm, "transform": mlm,
              "pooler": pooler, "n_classes": n_classes},
        init_std=float(hf.get("initializer_range", 0.02)), pad_token_id=pad_id(hf, vocab),
    ))


def convert_from_hf(src: TensorSource, cfg: TransformerConfig) -> tuple[dict, dict]:
    """archlab state dict (and the HF tensor each entry came from)."""
    D, F, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
    out = ConvertedState(src)
    state, sources, put, linear = out.state, out.sources, out.put, out.linear

    def norm(ours: str, theirs: str) -> None:
        linear(ours, theirs, (D,))

    put("tok_embed.weight", "embeddings.word_embeddings.weight", (V, D))
    put("pos_embed.weight", "embeddings.position_embeddings.weight", (cfg.max_seq_len, D))
    put("seg_embed.weight", "embeddings.token_type_embeddings.weight", (cfg.embed.n_segments, D))
    norm("embed_norm", "embeddings.LayerNorm")
    for i in range(cfg.n_layers):
        h, a = f"encoder.layer.{i}.", f"encoder.blocks.{i}."
        for theirs, ours in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            linear(f"{a}sub.mixer.{ours}", f"{h}attention.self.{theirs}", (D, D))
        linear(f"{a}sub.mixer.o_proj", f"{h}attention.output.dense", (D, D))
        norm(f"{a}norms.mixer", f"{h}attention.output.LayerNorm")
        linear(f"{a}sub.ffn.fc_in", f"{h}intermediate.dense", (F, D))
        linear(f"{a}sub.ffn.fc_out", f"{h}output.dense", (D, F))
        norm(f"{a}norms.ffn", f"{h}output.LayerNorm")
    if cfg.head.pooler:
        linear("pooler", "pooler.dense", (D, D))
    if cfg.head.n_classes:
        linear("classifier", "/classifier", (cfg.head.n_classes, D))
    if cfg.head.lm:
        linear("mlm_transform.dense", "/cls.predictions.transform.dense", (D, D))
        norm("mlm_transform.norm", "/cls.predictions.transform.LayerNorm")
        if cfg.head.tie:  # transformers ties decoder.bias to predictions.bias together with the weight
            state["lm_head.bias"] = src.take_first(["/cls.predictions.bias", "/cls.predictions.decoder.bias"], (V,))
            sources["lm_head.bias"] = "cls.predictions.bias"
        else:  # untied: the decoder Linear's own bias is the one forward() adds; predictions.bias is unused
            put("lm_head.bias", "/cls.predictions.decoder.bias", (V,))
            src.take("/cls.predictions.bias", (V,))
        if cfg.head.tie:
            if src.has("/cls.predictions.decoder.weight") and not torch.equal(
                    src.take("/cls.predictions.decoder.weight"), state["tok_embed.weight"]):
                raise InteropError(f"{src.where}: cls.predictions.decoder.weight differs from the word embeddings "
                                   "although tie_word_embeddings=true")
        else:
            put("lm_head.weight", "/cls.predictions.decoder.weight", (V, D))
    return state, sources


def claims(cfg: TransformerConfig) -> bool:
    """Whether an archlab config is BERT shaped (encoder-only)."""
    return cfg.shape == "encoder"


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
    """HF BertConfig dict for an archlab config; archlab choices BERT lacks raise naming the field."""
    a, h = cfg.attn, cfg.head
    checks = [("shape", cfg.shape, "encoder"), ("pos.kind", cfg.pos.kind, "learned"),
              ("pos.placement", cfg.pos.placement, "embedding"),  # HF adds positions at the embedding
              ("norm.kind", cfg.norm.kind, "layernorm"), ("norm.bias", cfg.norm.bias, True),
              ("block.norm", cfg.block.norm, "post"), ("block.residual", cfg.block.residual, True),
              ("block.order", list(cfg.block.order), ["mixer", "ffn"]), ("use_final_norm", cfg.use_final_norm, False),
              ("attn.bias", a.bias, True), ("attn.out_bias", a.out_bias in (None, True), True),
              ("attn.scale", a.scale, "sqrt_d"), ("attn.window", a.window, None),
              ("attn.n_kv_heads", a.kv_heads, a.n_heads), ("attn.head_dim", cfg.head_dim, cfg.d_model // a.n_heads),
              ("ffn.enabled", cfg.ffn.enabled, True), ("ffn.bias", cfg.ffn.bias, True),
              ("embed.scale", cfg.embed.scale, False), ("embed.norm", cfg.embed.norm, True),
              ("head.bias", h.bias, h.lm), ("head.transform", h.transform, h.lm),
              ("mixer.pattern", list(cfg.mixer.pattern), [])]
    for field, value, want in checks:
        if value != want:
            raise cannot_export(FAMILY, field, value, want)
    if cfg.embed.n_segments < 1:
        raise cannot_export(FAMILY, "embed.n_segments", cfg.embed.n_segments, ">= 1")
    if cfg.ffn.activation not in ACT_TO_HF:
        raise cannot_export(FAMILY, "ffn.activation", cfg.ffn.activation, sorted(ACT_TO_HF))
    if h.lm and h.n_classes:
        raise cannot_export(FAMILY, "head", "lm + n_classes", "an MLM head or a classifier, not both")
    arch = "BertForMaskedLM" if h.lm else "BertForSequenceClassification" if h.n_classes else "BertModel"
    out = {
        "architectures": [arch], "model_type": MODEL_TYPE, "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": a.n_heads, "intermediate_size": cfg.d_ff,
        "hidden_act": ACT_TO_HF[cfg.ffn.activation], "max_position_embeddings": cfg.max_seq_len,
        "type_vocab_size": cfg.embed.n_segments, "layer_norm_eps": cfg.norm.eps,
        "hidden_dropout_prob": cfg.block.dropout, "attention_probs_dropout_prob": a.dropout,
        "initializer_range": cfg.init_std, "pad_token_id": cfg.pad_token_id, "tie_word_embeddings": h.tie,
        "is_decoder": False, "add_cross_attention": False,
    }
    if h.n_classes:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(h.n_classes)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(h.n_classes)}
    return out


def convert_to_hf(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF tensors under the names of the class config_to_hf picked."""
    h = cfg.head
    p = "bert." if (h.lm or h.n_classes) else ""
    out: dict[str, torch.Tensor] = {
        f"{p}embeddings.word_embeddings.weight": state["tok_embed.weight"],
        f"{p}embeddings.position_embeddings.weight": state["pos_embed.weight"],
        f"{p}embeddings.token_type_embeddings.weight": state["seg_embed.weight"],
    }

    def copy(theirs: str, ours: str) -> None:
        out[f"{theirs}.weight"], out[f"{theirs}.bias"] = state[f"{ours}.weight"], state[f"{ours}.bias"]

    copy(f"{p}embeddings.LayerNorm", "embed_norm")
    for i in range(cfg.n_layers):
        t, a = f"{p}encoder.layer.{i}.", f"encoder.blocks.{i}."
        for theirs, ours in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            copy(f"{t}attention.self.{theirs}", f"{a}sub.mixer.{ours}")
        copy(f"{t}attention.output.dense", f"{a}sub.mixer.o_proj")
        copy(f"{t}attention.output.LayerNorm", f"{a}norms.mixer")
        copy(f"{t}intermediate.dense", f"{a}sub.ffn.fc_in")
        copy(f"{t}output.dense", f"{a}sub.ffn.fc_out")
        copy(f"{t}output.LayerNorm", f"{a}norms.ffn")
    if h.pooler:  # BertForMaskedLM has no pooler; it is stored anyway (transformers skips it) so nothing is lost
        copy(f"{p}pooler.dense", "pooler")
    if h.n_classes:
        copy("classifier", "classifier")
    if h.lm:
        copy("cls.predictions.transform.dense", "mlm_transform.dense")
        copy("cls.predictions.transform.LayerNorm", "mlm_transform.norm")
        out["cls.predictions.bias"] = state["lm_head.bias"]
        if not h.tie:
            out["cls.predictions.decoder.weight"] = state["lm_head.weight"]
            out["cls.predictions.decoder.bias"] = state["lm_head.bias"]
    return out
