"""The equations the HF parity tests check, checked again without transformers or gguf (issue 18, item 7).

Each reference below is written from the formula, element by element, not from archlab's code: RoPE's
rotation (sin/cos and the rotate-half sign), RMSNorm's ε inside the root, SwiGLU's gate on W_g, the
LLaMA q/k row permutation between the Meta/GGUF and HF layouts, a whole LLaMA forward from HF-named
tensors, and the 6N-causal training FLOPs. (Mamba's D skip: tests/mixers/test_mamba_reference.py.)
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from archlab.cost import model_cost
from archlab.interop import convert_state_from_hf
from archlab.interop.gguf import unpermute
from archlab.models import build_model
from archlab.nn.ffn import FeedForward, FFNConfig
from archlab.nn.norm import NormConfig, RMSNorm
from archlab.nn.position import PositionConfig, RotaryEmbedding
from archlab.registry import Context


def _rope(head_dim: int, max_len: int, theta: float = 10000.0) -> RotaryEmbedding:
    return RotaryEmbedding(PositionConfig(kind="rope", rope_theta=theta), Context(head_dim, max_len=max_len,
                                                                                  head_dim=head_dim))


# ----------------------------------------------------------------------------- RoPE
def rope_reference(x: torch.Tensor, theta: float) -> torch.Tensor:
    """HF/archlab layout: (x_i, x_{i+d/2}) at position t rotated by the angle t·θ_i, θ_i = theta^(−2i/d).

    x (T, d) → (T, d):  x'_i = x_i cos a − x_{i+d/2} sin a,   x'_{i+d/2} = x_i sin a + x_{i+d/2} cos a.
    """
    T, d = x.shape
    out = torch.empty_like(x)
    for t in range(T):
        for i in range(d // 2):
            a = t * theta ** (-2 * i / d)
            c, s = math.cos(a), math.sin(a)
            lo, hi = float(x[t, i]), float(x[t, i + d // 2])
            out[t, i], out[t, i + d // 2] = lo * c - hi * s, lo * s + hi * c
    return out


def test_rope_rotates_each_half_pair_by_position_times_theta():
    d, T, theta = 8, 7, 100.0
    rope = _rope(d, 16, theta)
    x = torch.randn(1, 1, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = rope(x, torch.arange(T))[0, 0]
    torch.testing.assert_close(got, rope_reference(x[0, 0], theta), atol=1e-6, rtol=0)


def test_rope_unit_vectors_by_hand():
    """e_0 at position 1 with θ_0 = 1 becomes (cos 1, 0, sin 1, 0): catches a sin/cos swap and the sign."""
    rope = _rope(4, 4, theta=10000.0)
    e0 = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4)
    e2 = torch.tensor([0.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 4)
    pos = torch.tensor([1])
    torch.testing.assert_close(rope(e0, pos).flatten(), torch.tensor([math.cos(1), 0, math.sin(1), 0]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(rope(e2, pos).flatten(), torch.tensor([-math.sin(1), 0, math.cos(1), 0]),
                               atol=1e-6, rtol=0)
    # position 0 is the identity
    torch.testing.assert_close(rope(e0, torch.tensor([0])), e0)


def test_rotate_half_sign():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert RotaryEmbedding.rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]


def test_rope_scores_depend_on_the_offset_only():
    """q_m·k_n after RoPE is a function of m − n (the point of RoPE): shifting both positions keeps it."""
    rope = _rope(8, 32)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m, n):
        return float((rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum())

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(2, 5), abs=1e-3)


# ----------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_eps_is_inside_the_root():
    """y = x / √(mean(x²) + ε) · g, on a small x where ε inside vs outside the root differ by 3×."""
    x = torch.tensor([[3e-3, -4e-3]])
    eps = 1e-4
    norm = RMSNorm(NormConfig(kind="rmsnorm", eps=eps), Context(2))
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0]))
    ms = (3e-3 ** 2 + 4e-3 ** 2) / 2  # 1.25e-5
    r = math.sqrt(ms + eps)
    want = torch.tensor([[3e-3 / r, 2 * -4e-3 / r]])
    torch.testing.assert_close(norm(x), want, atol=1e-6, rtol=1e-5)
    outside = torch.tensor([[3e-3, 2 * -4e-3]]) / (math.sqrt(ms) + eps)
    assert (norm(x) - outside).abs().max() > 0.1  # the alternative placement is far off: the test can tell


# ----------------------------------------------------------------------------- SwiGLU
def test_swiglu_gates_with_the_gate_projection():
    """SwiGLU(x) = W_out (silu(W_g x) ⊙ W_1 x): the SiLU acts on fc_gate, not fc_in."""
    ffn = FeedForward(FFNConfig(activation="swiglu", d_ff=2, bias=False), Context(2))
    with torch.no_grad():
        ffn.fc_gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0]]))  # W_g
        ffn.fc_in.weight.copy_(torch.tensor([[3.0, 1.0], [0.5, 0.0]]))  # W_1
        ffn.fc_out.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    x = torch.tensor([[1.0, 2.0]])
    silu = lambda v: v / (1 + math.exp(-v))  # noqa: E731
    g = [silu(1.0), silu(-4.0)]  # silu(W_g x)
    u = [3.0 + 2.0, 0.5]  # W_1 x
    h = [g[0] * u[0], g[1] * u[1]]
    want = torch.tensor([[h[0] + h[1], h[1]]])
    torch.testing.assert_close(ffn(x), want, atol=1e-6, rtol=1e-6)
    swapped = torch.tensor([[silu(5.0) * 1.0 + silu(0.5) * -4.0, silu(0.5) * -4.0]])
    assert (ffn(x) - swapped).abs().max() > 0.5


# ----------------------------------------------------------------------------- LLaMA q/k layout
def unpermute_reference(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Meta/GGUF rows → HF rows, per head of size d: HF row j = Meta row 2j, HF row d/2 + j = Meta row 2j + 1."""
    d = w.shape[0] // n_heads
    out = torch.empty_like(w)
    for h in range(n_heads):
        for j in range(d // 2):
            out[h * d + j] = w[h * d + 2 * j]
            out[h * d + d // 2 + j] = w[h * d + 2 * j + 1]
    return out


def meta_rope_reference(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Meta's interleaved RoPE: (x_{2j}, x_{2j+1}) at position t rotated by t·θ_j, as complex multiplication."""
    T, d = x.shape
    pairs = torch.view_as_complex(x.reshape(T, d // 2, 2).contiguous())
    angles = torch.tensor([[t * theta ** (-2 * j / d) for j in range(d // 2)] for t in range(T)], dtype=x.dtype)
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).reshape(T, d)


@pytest.mark.parametrize("n_heads", [1, 3])
def test_gguf_unpermute_matches_the_layout_by_index(n_heads):
    w = torch.arange(n_heads * 8 * 5, dtype=torch.float32).view(n_heads * 8, 5)
    torch.testing.assert_close(unpermute(w, n_heads), unpermute_reference(w, n_heads), atol=0, rtol=0)
    assert unpermute(w[:, 0], n_heads).tolist() == unpermute_reference(w, n_heads)[:, 0].tolist()  # 1-D (biases)


def test_meta_layout_with_meta_rope_equals_hf_layout_with_archlab_rope():
    """Scores q_m·k_n of Meta weights + interleaved RoPE = scores of unpermuted weights + archlab's RoPE."""
    d, n_heads, D, T, theta = 8, 2, 6, 5, 10000.0
    g = torch.Generator().manual_seed(2)
    wq, wk = (torch.randn(n_heads * d, D, generator=g, dtype=torch.float64) for _ in range(2))
    x = torch.randn(T, D, generator=g, dtype=torch.float64)
    rope = _rope(d, T, theta)
    for h in range(n_heads):
        rows = slice(h * d, (h + 1) * d)
        qm, km = meta_rope_reference(x @ wq[rows].T, theta), meta_rope_reference(x @ wk[rows].T, theta)
        q_hf = (x @ unpermute(wq, n_heads)[rows].T).view(1, 1, T, d)
        k_hf = (x @ unpermute(wk, n_heads)[rows].T).view(1, 1, T, d)
        qa, ka = rope(q_hf, torch.arange(T))[0, 0], rope(k_hf, torch.arange(T))[0, 0]
        torch.testing.assert_close(qa @ ka.T, qm @ km.T, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- a whole LLaMA
V, D, H, KV, HD, FF, L, THETA, EPS = 30, 16, 4, 2, 4, 24, 2, 10000.0, 0.1


def _llama_tensors():
    g = torch.Generator().manual_seed(3)

    def r(*shape, scale=None):
        return torch.randn(*shape, generator=g) * (scale or shape[-1] ** -0.5)

    t = {"model.embed_tokens.weight": r(V, D, scale=1.0), "model.norm.weight": 1 + 0.1 * r(D, scale=1.0),
         "lm_head.weight": r(V, D)}
    for i in range(L):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": 1 + 0.1 * r(D, scale=1.0),
                  p + "post_attention_layernorm.weight": 1 + 0.1 * r(D, scale=1.0),
                  p + "self_attn.q_proj.weight": r(H * HD, D), p + "self_attn.k_proj.weight": r(KV * HD, D),
                  p + "self_attn.v_proj.weight": r(KV * HD, D), p + "self_attn.o_proj.weight": r(D, H * HD),
                  p + "mlp.gate_proj.weight": r(FF, D), p + "mlp.up_proj.weight": r(FF, D),
                  p + "mlp.down_proj.weight": r(D, FF)})
    return t


def llama_reference(t: dict[str, torch.Tensor], ids: list[int]) -> torch.Tensor:
    """LlamaForCausalLM's forward from its equations (pre-norm RMSNorm, GQA, rotate-half RoPE, SwiGLU)."""
    T = len(ids)

    def rms(x, w):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w

    h = t["model.embed_tokens.weight"][ids]  # (T, D)
    for i in range(L):
        p = f"model.layers.{i}."
        x = rms(h, t[p + "input_layernorm.weight"])
        q = (x @ t[p + "self_attn.q_proj.weight"].T).view(T, H, HD)
        k = (x @ t[p + "self_attn.k_proj.weight"].T).view(T, KV, HD)
        v = (x @ t[p + "self_attn.v_proj.weight"].T).view(T, KV, HD)
        heads = []
        for n in range(H):
            kv = n // (H // KV)  # GQA: query head n reads kv head n // group
            qn, kn = rope_reference(q[:, n], THETA), rope_reference(k[:, kv], THETA)
            s = qn @ kn.T / math.sqrt(HD)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            heads.append(torch.softmax(s, -1) @ v[:, kv])
        h = h + torch.cat(heads, -1) @ t[p + "self_attn.o_proj.weight"].T
        x = rms(h, t[p + "post_attention_layernorm.weight"])
        gate = F.silu(x @ t[p + "mlp.gate_proj.weight"].T)
        h = h + (gate * (x @ t[p + "mlp.up_proj.weight"].T)) @ t[p + "mlp.down_proj.weight"].T
    return rms(h, t["model.norm.weight"]) @ t["lm_head.weight"].T


def test_llama_from_hf_tensors_equals_the_equations():
    """A LLaMA imported from HF-named tensors (no transformers) equals the hand-written forward."""
    hf = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": V, "hidden_size": D,
          "num_attention_heads": H, "num_key_value_heads": KV, "intermediate_size": FF, "num_hidden_layers": L,
          "max_position_embeddings": 32, "rope_theta": THETA, "rms_norm_eps": EPS, "hidden_act": "silu",
          "tie_word_embeddings": False}
    tensors = _llama_tensors()
    cfg, state, _ = convert_state_from_hf(hf, dict(tensors), "hand-made")
    model = build_model(cfg).eval()
    model.load_state_dict(state, strict=True)
    ids = [3, 17, 0, 29, 8, 8, 12]
    with torch.no_grad():
        got = model(torch.tensor([ids]))[0]
    torch.testing.assert_close(got, llama_reference(tensors, ids), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- training FLOPs
def test_train_flops_6N_causal_by_hand():
    """6·N + 6·L·H·d_head·T: the full-square attention term 12·L·H·d·T halved by the causal mask."""
    s = model_cost("gpt2", seq_len=1024).seq
    N, LHd, T = 123_653_376, 12 * 12 * 64, 1024  # N: GPT-2 small without its position table
    assert s["train_flops_per_token_6N_causal"] == 6 * N + 6 * LHd * T == 798_543_360
    assert s["train_flops_per_token_6N"] - s["train_flops_per_token_6N_causal"] == 6 * LHd * T
    # GQA: the term counts query heads (K/V sharing saves no score FLOPs); N by hand for llama-tiny
    # (D 64, 2 layers, 4 heads of 16 on 2 KV heads, SwiGLU d_ff 172, vocab 256, untied; embedding is a lookup)
    mc = model_cost("llama-tiny", seq_len=64)
    per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 172 + 2 * 64
    N = 2 * per_layer + 64 + 256 * 64
    assert mc.params_dense == N == 107_328
    assert mc.seq["train_flops_per_token_6N_causal"] == 6 * N + 6 * (2 * 4 * 16) * 64 == 693_120
