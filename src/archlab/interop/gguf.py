"""LLaMA-architecture GGUF files (e.g. SmolLM2) → HF-style config + dequantised fp32 tensors.

Read with the `gguf` package (the llama.cpp project's reader): metadata becomes an HF LlamaConfig
dict, every tensor is dequantised (Q4_1, Q8_0, ... → float32) and renamed to transformers' names,
so the ordinary LLaMA converter does the rest. llama.cpp stores q/k projections with the rows of
each head interleaved for its RoPE kernel; `unpermute` restores HF's rotate-half order.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.interop.hf_io import InteropError

# llama.cpp tensor name (after "blk.N.") -> transformers name (after "model.layers.N.")
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
PRE_TOKENIZERS = ("default", "gpt2", "smollm")


def _reader(path: str | Path):
    try:
        import gguf
    except ImportError:
        raise InteropError("reading .gguf files needs the `gguf` package (pip install gguf)") from None
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"GGUF file {str(p)!r} does not exist")
    st = p.stat()
    return gguf, _cached_reader(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1)
def _cached_reader(path: str, mtime_ns: int, size: int):
    """One parse per file version: parsing the metadata (50k vocabulary strings) dominates reading time."""
    import gguf

    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, struct.error, KeyError, IndexError) as e:  # what the reader raises on a bad file
        raise InteropError(f"{path!r} is not a readable GGUF file: {e}") from None


def _field(reader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation: per head, (d/2, 2) interleaved rows → (2, d/2) halves."""
    rest = w.shape[1:]
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *rest).transpose(1, 2).reshape(w.shape)


def read_gguf(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(HF LlamaConfig dict, {transformers tensor name: float32 tensor}) for a LLaMA GGUF file."""
    gguf, r = _reader(path)
    arch = _field(r, "general.architecture")
    if arch != "llama":
        raise InteropError(f"{str(path)!r}: GGUF general.architecture={arch!r} is not supported "
                           "(archlab reads 'llama' GGUF files)")

    def need(key: str) -> Any:
        v = _field(r, f"llama.{key}")
        if v is None:
            raise InteropError(f"{str(path)!r} lacks GGUF metadata 'llama.{key}'")
        return v

    d, heads = int(need("embedding_length")), int(need("attention.head_count"))
    kv = int(_field(r, "llama.attention.head_count_kv", heads))
    head_dim = int(_field(r, "llama.rope.dimension_count", d // heads))
    names = {t.name for t in r.tensors}
    vocab = _field(r, "llama.vocab_size") or len(r.fields["tokenizer.ggml.tokens"].data)
    scaling = _field(r, "llama.rope.scaling.type")
    theta = float(_field(r, "llama.rope.freq_base", 10000.0))
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    if scaling == "linear":
        rope.update(rope_type="linear", factor=float(need("rope.scaling.factor")))
    elif scaling not in (None, "none"):
        raise InteropError(f"{str(path)!r}: GGUF llama.rope.scaling.type={scaling!r} is not supported "
                           "(supported: none, linear, and Llama 3 scaling given as a rope_freqs tensor)")
    hf: dict[str, Any] = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": int(vocab), "hidden_size": d,
        "intermediate_size": int(need("feed_forward_length")), "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim,
        "max_position_embeddings": int(_field(r, "llama.context_length", 2048)),
        "rms_norm_eps": float(_field(r, "llama.attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_parameters": rope, "hidden_act": "silu",
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_q.bias" in names, "mlp_bias": False,
        "bos_token_id": _field(r, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(r, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": _field(r, "tokenizer.ggml.padding_token_id"),
        "_name_or_path": _field(r, "general.name") or "gguf",
    }
    tensors = _tensors(gguf, r, path, heads, kv)
    if "rope_freqs.weight" in tensors:  # Llama 3 RoPE: llama.cpp stores per-frequency divisors
        if scaling not in (None, "none"):
            raise InteropError(f"{str(path)!r} has both llama.rope.scaling.type={scaling!r} and a rope_freqs tensor")
        hf["rope_parameters"] = llama3_from_rope_freqs(tensors.pop("rope_freqs.weight"), theta, head_dim, str(path))
    return hf, tensors


def _tensors(gguf, r, path: str | Path, heads: int, kv: int) -> dict[str, torch.Tensor]:
    """Every tensor of the file, dequantised to float32, under its transformers name (q/k rows un-permuted)."""
    tensors: dict[str, torch.Tensor] = {}
    for t in r.tensors:
        if t.name in TOP_NAMES:
            name = TOP_NAMES[t.name]
        elif t.name.startswith("blk."):
            _, layer, rest = t.name.split(".", 2)
            name = f"model.layers.{layer}.{LAYER_NAMES[rest]}" if rest in LAYER_NAMES else t.name
        else:
            name = t.name  # left for the converter to report as unexpected
        try:
            arr = gguf.quants.dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise InteropError(f"{str(path)!r}: tensor {t.name!r} uses GGUF type {t.tensor_type.name}, which the "
                               "installed gguf package cannot dequantise") from None
        shape = tuple(int(x) for x in t.shape[::-1])  # GGUF lists dims fastest-first
        w = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)).reshape(shape)
        if name.endswith("q_proj.weight") or name.endswith("q_proj.bias"):
            w = unpermute(w, heads)
        elif name.endswith("k_proj.weight") or name.endswith("k_proj.bias"):
            w = unpermute(w, kv)
        tensors[name] = w
    return tensors


def llama3_from_rope_freqs(factors: torch.Tensor, theta: float, head_dim: int, where: str) -> dict[str, Any]:
    """HF `rope_parameters` (rope_type llama3) reproducing llama.cpp's `rope_freqs` divisors.

    llama.cpp's converter writes f_i = 1 for short wavelengths, `factor` for long ones and
    1 / ((1 − s_i)/factor + s_i) between, with s_i = (L/λ_i − low)/(high − low) linear in 1/λ_i. The ramp
    fixes factor and the line s(1/λ); (L, low, high) are then determined up to one common scale, so L is
    taken as the nearest integer and low/high follow. The result is checked against every stored divisor
    (relative 1e-5): anything else is refused rather than approximated.
    """
    import math

    from archlab.models.transformer_config import RopeScalingConfig
    from archlab.nn.position import rope_inv_freq

    f = factors.double().flatten()
    base = rope_inv_freq(head_dim, theta).double()
    if f.numel() != base.numel() or not bool(torch.isfinite(f).all()) or float(f.min()) <= 0:
        raise InteropError(f"{where}: tensor 'rope_freqs.weight' has shape {tuple(factors.shape)}; expected "
                           f"{base.numel()} positive finite divisors (head_dim {head_dim} / 2)")
    if bool(torch.allclose(f, torch.ones_like(f), rtol=0, atol=1e-6)):
        return {"rope_type": "default", "rope_theta": theta}
    factor = float(f.max())
    x = base / (2 * math.pi)  # 1 / wavelength
    middle = (f > 1 + 1e-6) & (f < factor * (1 - 1e-6))
    err = InteropError(f"{where}: tensor 'rope_freqs.weight' does not follow Llama 3's RoPE scaling rule "
                       "(needs at least two frequencies on the ramp to recover it); not supported")
    if int(middle.sum()) < 2 or factor <= 1:
        raise err
    s = (1 / f[middle] - 1 / factor) / (1 - 1 / factor)
    a, c = torch.linalg.lstsq(torch.stack([x[middle], -torch.ones_like(s)], 1), s[:, None]).solution.flatten().tolist()
    if not (a > 0 and c > 0):
        raise err
    orig = max(int(round(a / c)), 1)  # with low_freq_factor = 1, L = a / c
    low = c * orig / a
    params = {"rope_type": "llama3", "rope_theta": theta, "factor": factor, "low_freq_factor": low,
              "high_freq_factor": low + orig / a, "original_max_position_embeddings": orig}
    scaling = RopeScalingConfig(kind="llama3", factor=factor, low_freq_factor=low,
                                high_freq_factor=params["high_freq_factor"], original_max_seq_len=orig)
    got = rope_inv_freq(head_dim, theta, scaling).double()
    if not bool(torch.allclose(got, base / f, rtol=1e-5, atol=0)):
        raise err
    return params


def tokenizer_from_gguf(path: str | Path):
    """The byte-level BPE tokenizer a GGUF file embeds, as a `tokenizers.Tokenizer` (tokenizer.ggml.model=gpt2)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    _, r = _reader(path)
    kind, pre = _field(r, "tokenizer.ggml.model"), _field(r, "tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise InteropError(f"{str(path)!r}: GGUF tokenizer.ggml.model={kind!r} is not supported (archlab reads 'gpt2' "
                           "byte-level BPE)")
    if pre not in PRE_TOKENIZERS:
        raise InteropError(f"{str(path)!r}: GGUF tokenizer.ggml.pre={pre!r} is not supported (supported: "
                           f"{list(PRE_TOKENIZERS)})")
    tokens = _field(r, "tokenizer.ggml.tokens")
    types = _field(r, "tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = [tuple(m.split(" ", 1)) for m in _field(r, "tokenizer.ggml.merges") or []]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False,
                              byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    # llama.cpp's "smollm" pre-tokenizer splits each digit off before GPT-2's regex (as SmolLM2's tokenizer.json)
    tk.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                        if pre == "smollm" else byte_level)
    tk.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]  # CONTROL
    tk.add_special_tokens(special)
    return tk
