"""`attn.scale` (seed 004: "We divide the scores by the square root of the ... key vector dimension"):
"sqrt_d" (default) is today's softmax(QKᵀ/√d)V bit for bit; "none" is softmax(QKᵀ)V in every attention path —
reference = SDPA (causal, padding, GQA, cross, windowed, odd shapes), the KV cache, the static-cache decoder —
and an unknown value is refused naming `attn.scale`."""
import math

import pytest
import torch
import torch.nn.functional as F
from _decoding_checks import (
    assert_decoder_cache_matches_full_forward,
    assert_encoder_decoder_cache_matches_full_forward,
)

from archlab.config import ConfigError, apply_overrides
from archlab.models import build_model, preset
from archlab.nn.attention import Attention, AttentionConfig, attention_reference, attention_sdpa, build_mask
from archlab.nn.mixer import MixerInputs
from archlab.registry import Context

FP32 = dict(atol=1e-5, rtol=1.3e-6)


def _qkv(b=2, h=4, hkv=4, tq=7, tk=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, tq, d, generator=g), torch.randn(b, hkv, tk, d, generator=g),
            torch.randn(b, hkv, tk, d, generator=g))


def _explicit(q, k, v, divide: bool, mask=None):
    """softmax(QKᵀ/√d + mask)V, or softmax(QKᵀ + mask)V, in plain ops (GQA by repeating kv heads)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1)
    if divide:
        scores = scores / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1) @ v


def test_default_is_todays_equation_bit_for_bit():
    q, k, v = _qkv(h=4, hkv=2)
    mask = build_mask(7, 7, causal=True, key_mask=torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]]))
    assert AttentionConfig().scale == "sqrt_d"
    assert torch.equal(attention_reference(q, k, v, mask=mask), _explicit(q, k, v, True, mask))
    assert torch.equal(attention_reference(q, k, v, mask=mask, scale=None), _explicit(q, k, v, True, mask))
    # the SDPA path passes scale=None (torch's own 1/√d) for the default: the very same call as before
    assert torch.equal(attention_sdpa(q, k, v, mask=mask),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True))
    torch.testing.assert_close(attention_sdpa(q, k, v, mask=mask), _explicit(q, k, v, True, mask), **FP32)


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_default_model_is_unchanged(impl):
    """A model built with attn.scale: sqrt_d written out is the model built without it, bit for bit."""
    ids = torch.randint(0, 256, (2, 13))
    outs = []
    for extra in ({}, {"attn__scale": "sqrt_d"}):
        torch.manual_seed(0)
        with torch.no_grad():
            outs.append(build_model(preset("gpt-tiny", attn__impl=impl, **extra)).eval()(ids))
    assert torch.equal(*outs)


@pytest.mark.parametrize("b,h,hkv,tq,tk,d", [(2, 4, 4, 7, 7, 16), (3, 6, 2, 5, 11, 12), (1, 3, 1, 9, 9, 5),
                                             (2, 4, 2, 1, 13, 8)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_none_is_the_undivided_equation_in_both_impls(b, h, hkv, tq, tk, d, causal, padded):
    q, k, v = _qkv(b, h, hkv, tq, tk, d, seed=tq * tk)
    key_mask = torch.ones(b, tk, dtype=torch.long)
    if padded:
        key_mask[-1, : tk // 2] = 0  # the last row left-padded
    mask = build_mask(tq, tk, causal=causal, key_mask=key_mask if padded else None)
    want = _explicit(q, k, v, False, mask)
    ref = attention_reference(q, k, v, mask=mask, scale=1.0)
    torch.testing.assert_close(ref, want, **FP32)
    torch.testing.assert_close(attention_sdpa(q, k, v, mask=mask, scale=1.0), ref, **FP32)
    # is_causal (no explicit mask) goes through the other branch of each impl
    if causal and not padded:
        torch.testing.assert_close(attention_sdpa(q, k, v, is_causal=True, scale=1.0),
                                   attention_reference(q, k, v, is_causal=True, scale=1.0), **FP32)
    assert not torch.allclose(ref, attention_reference(q, k, v, mask=mask))  # the scale does something


def test_none_equals_default_with_queries_multiplied_by_sqrt_d():
    q, k, v = _qkv(h=4, hkv=1, d=9)
    for impl in (attention_reference, attention_sdpa):
        torch.testing.assert_close(impl(q, k, v, is_causal=True, scale=1.0), impl(q * 3.0, k, v, is_causal=True),
                                   **FP32)
        torch.testing.assert_close(impl(q, k, v, window=3, scale=1.0), impl(q * 3.0, k, v, window=3), **FP32)


def _module_explicit(m: Attention, x, memory=None, mask=None, divide=True):
    """The module's own weights through `_explicit`, then o_proj (no rope: learned positions)."""
    src = x if memory is None else memory
    q = m._heads(m.q_proj(x), m.n_heads)
    k, v = m._heads(m.k_proj(src), m.n_kv_heads), m._heads(m.v_proj(src), m.n_kv_heads)
    y = _explicit(q, k, v, divide, mask)
    return m.o_proj(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


@pytest.mark.parametrize("scale", ["sqrt_d", "none"])
@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_self_and_cross_attention_modules(scale, impl):
    from archlab.nn.attention import CrossAttention

    torch.manual_seed(0)
    cfg = AttentionConfig(n_heads=4, n_kv_heads=2, impl=impl, scale=scale)
    x, memory = torch.randn(2, 6, 32), torch.randn(2, 10, 32)
    memory_mask = build_mask(6, 10, causal=False, key_mask=torch.tensor([[1] * 10, [1] * 7 + [0] * 3]))
    self_attn = Attention(cfg, Context(32, causal=True))
    cross = CrossAttention(cfg, Context(32, causal=False))
    with torch.no_grad():
        got = self_attn(x, MixerInputs(causal=True))
        got_cross = cross(x, MixerInputs(memory=memory, memory_mask=memory_mask))
        causal = build_mask(6, 6, causal=True)
        torch.testing.assert_close(got, _module_explicit(self_attn, x, mask=causal, divide=scale == "sqrt_d"), **FP32)
        torch.testing.assert_close(got_cross, _module_explicit(cross, x, memory, memory_mask, scale == "sqrt_d"),
                                   **FP32)


def _model(name="gpt-tiny", impl="reference", **kw):
    torch.manual_seed(0)
    return build_model(preset(name, attn__scale="none", attn__impl=impl, **kw)).eval()


@pytest.mark.parametrize("name,kw", [("gpt-tiny", {}), ("llama-tiny", {}), ("gpt-tiny", {"attn__window": 4}),
                                     ("transformer-tiny", {})])
def test_models_under_none_reference_equals_sdpa_with_padding(name, kw):
    src = torch.randint(0, 256, (2, 11))
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, :4] = 0
    extra = {"decoder_input_ids": torch.randint(0, 256, (2, 7))} if name == "transformer-tiny" else {}
    if name == "transformer-tiny":
        mask = mask.flip(1)  # the encoder side pads on the right
    with torch.no_grad():
        ref = _model(name, "reference", **kw)(src, attention_mask=mask, **extra)
        fast = _model(name, "sdpa", **kw)(src, attention_mask=mask, **extra)
        torch.manual_seed(0)
        default = build_model(preset(name, **kw)).eval()(
            src, attention_mask=mask, **extra)
    torch.testing.assert_close(fast, ref, **FP32)
    assert not torch.allclose(ref, default)


@pytest.mark.parametrize("name,impl", [("gpt-tiny", "sdpa"), ("llama-tiny", "reference"), ("gpt-tiny", "reference")])
def test_kv_cache_decoding_under_none_equals_full_forward(name, impl):
    assert_decoder_cache_matches_full_forward(_model(name, impl))


def test_encoder_decoder_cache_under_none_equals_full_forward():
    assert_encoder_decoder_cache_matches_full_forward(_model("transformer-tiny", "sdpa"))


def test_static_cache_decoder_under_none_equals_full_forward():
    from archlab.perf.static_decode import StaticDecoder

    model = _model("gpt-tiny", "sdpa")
    ids = torch.randint(0, 256, (1, 13))
    dec = StaticDecoder(model, max_len=32)
    with torch.no_grad():
        full = model(ids)
        logits = [dec.prefill(ids[:, :5])[0]] + [dec.step(ids[:, t:t + 1], torch.tensor([t]))[0]
                                                  for t in range(5, 13)]
    torch.testing.assert_close(torch.cat(logits, 1), full, **FP32)


@pytest.mark.parametrize("bad", ["sqrt_T", "1/sqrt_d", None, 1.0, "None"])
def test_unknown_scale_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"attn\.scale"):
        AttentionConfig(scale=bad)
    with pytest.raises(ConfigError, match=r"attn\.scale"):
        preset("gpt-tiny", attn__scale=bad)


def test_scale_is_a_dotted_override_with_did_you_mean():
    assert apply_overrides(preset("gpt-tiny"), ["attn.scale=none"]).attn.scale == "none"
    with pytest.raises(ConfigError, match=r"attn\.scale='sqrt_D'.*did you mean 'sqrt_d'"):
        apply_overrides(preset("gpt-tiny"), ["attn.scale=sqrt_D"])
