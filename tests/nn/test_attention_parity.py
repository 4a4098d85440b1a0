"""The SDPA fast path equals the reference equation softmax(QKᵀ/√d + mask)V."""
import pytest
import torch

from archlab.nn.attention import Attention, AttentionConfig, attention_reference, attention_sdpa, build_mask
from archlab.nn.mixer import MixerInputs as In
from archlab.registry import Context

FP32 = dict(atol=1e-5, rtol=1.3e-6)


def _qkv(b=2, h=4, hkv=4, tq=7, tk=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, tq, d, generator=g)
    k = torch.randn(b, hkv, tk, d, generator=g)
    v = torch.randn(b, hkv, tk, d, generator=g)
    return q, k, v


@pytest.mark.parametrize("h,hkv", [(4, 4), (4, 2), (4, 1)])  # MHA, GQA, MQA
def test_causal(h, hkv):
    q, k, v = _qkv(h=h, hkv=hkv)
    torch.testing.assert_close(attention_sdpa(q, k, v, is_causal=True),
                               attention_reference(q, k, v, is_causal=True), **FP32)


def test_causal_flag_equals_explicit_mask():
    q, k, v = _qkv()
    mask = build_mask(7, 7, causal=True, key_mask=torch.ones(2, 7), device=None)
    torch.testing.assert_close(attention_reference(q, k, v, mask=mask),
                               attention_reference(q, k, v, is_causal=True), **FP32)


@pytest.mark.parametrize("causal", [True, False])
def test_padded(causal):
    q, k, v = _qkv(h=4, hkv=2)
    key_mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]])  # second row is left-padded
    mask = build_mask(7, 7, causal=causal, key_mask=key_mask)
    ref, fast = attention_reference(q, k, v, mask=mask), attention_sdpa(q, k, v, mask=mask)
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(fast, ref, **FP32)


def test_cross_attention_different_lengths():
    q, k, v = _qkv(tq=5, tk=9, h=4, hkv=2)
    key_mask = torch.ones(2, 9)
    key_mask[1, 6:] = 0
    mask = build_mask(5, 9, causal=False, key_mask=key_mask)
    torch.testing.assert_close(attention_sdpa(q, k, v, mask=mask), attention_reference(q, k, v, mask=mask), **FP32)


def test_padding_keys_are_ignored():
    """Changing the values at padded key positions must not change any output."""
    q, k, v = _qkv(b=1, tk=7, tq=7)
    key_mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    mask = build_mask(7, 7, causal=False, key_mask=key_mask)
    out = attention_reference(q, k, v, mask=mask)
    v2 = v.clone()
    v2[..., 5:, :] += 100.0
    torch.testing.assert_close(attention_reference(q, k, v2, mask=mask), out, **FP32)


def test_module_impls_agree_with_gqa_and_cache_offsets():
    torch.manual_seed(0)
    ref = Attention(AttentionConfig(n_heads=4, n_kv_heads=2, head_dim=8, impl="reference"), Context(32))
    fast = Attention(AttentionConfig(n_heads=4, n_kv_heads=2, head_dim=8, impl="sdpa"), Context(32))
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 32)
    mask = build_mask(6, 6, causal=True)
    torch.testing.assert_close(fast(x, In(attn_mask=mask)), ref(x, In(attn_mask=mask)), **FP32)
    torch.testing.assert_close(fast(x, In(causal=True)), ref(x, In(attn_mask=mask)), **FP32)


@pytest.mark.parametrize("tq,tk", [(7, 7), (3, 7)])  # full sequence, and the last 3 queries of a cached prefix
@pytest.mark.parametrize("h,hkv", [(4, 4), (4, 2)])
def test_mask_and_is_causal_combine_identically_in_both_paths(tq, tk, h, hkv):
    """Given both, each path attends where the mask AND causality allow (was: reference dropped the mask,
    SDPA dropped causality — max difference 2.19)."""
    q, k, v = _qkv(h=h, hkv=hkv, tq=tq, tk=tk)
    key_mask = torch.tensor([[1] * tk, [0, 0] + [1] * (tk - 2)])  # second row left-padded
    pad = build_mask(tq, tk, causal=False, key_mask=key_mask)
    both = build_mask(tq, tk, causal=True, key_mask=key_mask)  # the combination spelled out as one mask
    want = attention_reference(q, k, v, mask=both)
    torch.testing.assert_close(attention_reference(q, k, v, mask=pad, is_causal=True), want, **FP32)
    torch.testing.assert_close(attention_sdpa(q, k, v, mask=pad, is_causal=True), want, **FP32)
    assert not torch.allclose(attention_reference(q, k, v, mask=pad), want)  # causality does change it
    assert not torch.allclose(attention_reference(q, k, v, is_causal=True), want)  # and so does the mask


def test_module_paths_agree_given_mask_and_is_causal():
    torch.manual_seed(0)
    cfg = dict(n_heads=4, n_kv_heads=2, head_dim=8)
    ref = Attention(AttentionConfig(**cfg, impl="reference"), Context(32))
    fast = Attention(AttentionConfig(**cfg, impl="sdpa"), Context(32))
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 32)
    pad = build_mask(6, 6, causal=False, key_mask=torch.tensor([[1] * 6, [0, 1, 1, 1, 1, 1]]))
    both = build_mask(6, 6, causal=True, key_mask=torch.tensor([[1] * 6, [0, 1, 1, 1, 1, 1]]))
    torch.testing.assert_close(fast(x, In(attn_mask=pad, causal=True)), ref(x, In(attn_mask=both)), **FP32)
    torch.testing.assert_close(ref(x, In(attn_mask=pad, causal=True)), ref(x, In(attn_mask=both)), **FP32)
