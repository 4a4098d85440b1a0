"""GGUF reading on a tiny LLaMA written here the way llama.cpp's converter writes one (q/k rows permuted)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _interop_util import batch, max_diff, scramble

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from archlab.interop import InteropError, from_hf, load_pretrained  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

V = 64
NAMES = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
         "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
         "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
         "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
         "mlp.down_proj.weight": "ffn_down.weight"}


def _permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py: reorder each head's rows for its interleaved RoPE."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama3_rope_freqs(c) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): Llama 3 RoPE as divisors."""
    rp = c.rope_parameters
    base, dim = rp["rope_theta"], c.head_dim
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    out = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def _write_gguf(hf_model, path, *, tied: bool, quantize_ffn: bool = False, rope_freqs: np.ndarray | None = None):
    c = hf_model.config
    w = gguf.GGUFWriter(str(path), "llama")
    if c.rope_parameters.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(c.rope_parameters["factor"])
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", rope_freqs)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.head_dim)
    w.add_vocab_size(V)
    # a byte-level BPE vocabulary: 2 control tokens, then byte symbols; one merge
    tokens = ["<s>", "</s>"] + [chr(0x21 + i) for i in range(V - 3)] + ["!\""]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3, 3] + [1] * (V - 2))
    w.add_token_merges(["! \""])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    sd = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        for hf_name, gg in NAMES.items():
            t = sd[f"model.layers.{i}.{hf_name}"]
            if gg == "attn_q.weight":
                t = _permute(t, c.num_attention_heads)
            elif gg == "attn_k.weight":
                t = _permute(t, c.num_key_value_heads)
            if quantize_ffn and gg.startswith("ffn_") and gg.endswith(".weight") and t.ndim == 2:
                q = gguf.quants.quantize(t, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(f"blk.{i}.{gg}", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(f"blk.{i}.{gg}", t)
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not tied:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _llama(tied: bool, rope: dict | None = None):
    rope = rope or {"rope_type": "default", "rope_theta": 50000.0}
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   rope_parameters=rope, tie_word_embeddings=tied, bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    return scramble(transformers.LlamaForCausalLM(cfg))


@pytest.mark.parametrize("tied", [True, False])
def test_gguf_llama_matches_transformers(tmp_path, tied):
    hf_model = _llama(tied)
    f = tmp_path / "tiny.gguf"
    _write_gguf(hf_model, f, tied=tied)
    model, tok = load_pretrained(f)
    assert model.cfg.head.tie == tied and model.cfg.attn.kv_heads == 2 and model.cfg.pos.rope_theta == 50000.0
    ids, mask = batch(V)
    with torch.no_grad():
        assert max_diff(model(ids, attention_mask=mask), hf_model(ids, attention_mask=mask).logits, mask) <= 1e-4
    assert torch.equal(greedy(model, ids[:2, :4], 32), hf_greedy(hf_model, ids[:2, :4], 32))
    # the embedded tokenizer: the merge applies, digits would split, control tokens are special
    assert tok.encode('!"#').ids == [V - 1, 4] and tok.token_to_id("</s>") == 1


def test_gguf_quantized_tensors_are_dequantized(tmp_path):
    hf_model = _llama(True)
    f = tmp_path / "q8.gguf"
    _write_gguf(hf_model, f, tied=True, quantize_ffn=True)
    model = from_hf(f)
    ref = hf_model.model.layers[0].mlp.up_proj.weight.detach()
    got = model.decoder.blocks[0].sub.ffn.fc_in.weight.detach()
    assert not torch.equal(got, ref) and max_diff(got, ref) < 0.02 * float(ref.abs().max())


def test_gguf_errors(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 12)
    with pytest.raises(InteropError, match="bad.gguf"):
        from_hf(bad)
    w = gguf.GGUFWriter(str(tmp_path / "phi.gguf"), "phi2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(InteropError, match="general.architecture='phi2'"):
        from_hf(tmp_path / "phi.gguf")


@pytest.mark.parametrize("rope", [
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 8.0,
     "original_max_position_embeddings": 2048, "rope_theta": 10000.0},
    {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
     "original_max_position_embeddings": 4096, "rope_theta": 10000.0},
    {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
], ids=["llama3-f8", "llama3-f32-low2", "linear"])
def test_gguf_scaled_rope(tmp_path, rope):
    """Llama 3 RoPE arrives as llama.cpp's `rope_freqs` tensor: read into archlab's llama3 scaling config and
    matched against transformers (logits, and greedy tokens past the 64-position context)."""
    hf_model = _llama(True, rope)
    f = tmp_path / "l3.gguf"
    llama3 = rope["rope_type"] == "llama3"
    _write_gguf(hf_model, f, tied=True, rope_freqs=_llama3_rope_freqs(hf_model.config) if llama3 else None)
    model = from_hf(f)
    assert model.cfg.pos.rope_scaling.kind == rope["rope_type"] and model.cfg.pos.rope_scaling.factor == rope["factor"]
    ids = torch.randint(0, V, (2, 80), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert max_diff(model(ids), hf_model(ids).logits) <= 1e-4
    assert torch.equal(greedy(model, ids[:2, :4], 32), hf_greedy(hf_model, ids[:2, :4], 32))
    # without the scaling the logits differ: the test would notice a dropped rope_freqs tensor
    plain = _llama(True)
    plain.load_state_dict(hf_model.state_dict())
    with torch.no_grad():
        assert max_diff(plain(ids).logits, hf_model(ids).logits) > 1e-3


def test_gguf_rope_freqs_off_the_llama3_rule_is_refused(tmp_path):
    hf_model = _llama(True)
    f = tmp_path / "odd.gguf"
    odd = np.linspace(1.0, 5.0, hf_model.config.head_dim // 2).astype(np.float32) ** 2  # no Llama 3 ramp
    _write_gguf(hf_model, f, tied=True, rope_freqs=odd)
    with pytest.raises(InteropError, match="rope_freqs.weight.*Llama 3"):
        from_hf(f)
