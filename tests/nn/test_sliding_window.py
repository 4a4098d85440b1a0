"""Sliding-window (local) attention, `attn.window`: SDPA = reference = a plain loop, the cache keeps only the
window, token-by-token generation = the full forward, and the cost model counts T·window pairs.
Also `pos.base`, the sinusoid's n (seed 003: "n can be set to any value")."""
import math

import pytest
import torch

from archlab.config import ConfigError
from archlab.cost.model_cost import model_cost
from archlab.models import build_model, preset
from archlab.nn.attention import SlidingKVCache, attention_reference, attention_sdpa, build_mask, window_pairs

FP32 = dict(atol=1e-5, rtol=1.3e-6)


def _qkv(b=2, h=4, hkv=4, tq=9, tk=9, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, tq, d, generator=g), torch.randn(b, hkv, tk, d, generator=g),
            torch.randn(b, hkv, tk, d, generator=g))


def _loop(q, k, v, window, causal, key_mask=None):
    """The definition, one query at a time: softmax over keys j with |i − j| < window (and j ≤ i if causal)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    tq, tk = q.shape[2], k.shape[2]
    out = torch.zeros_like(q)
    for b in range(q.shape[0]):
        for i in range(tq):
            a = i + tk - tq
            keys = [j for j in range(tk) if abs(a - j) < window and (j <= a or not causal)
                    and (key_mask is None or key_mask[b, j])]
            s = q[b, :, i, None] @ k[b, :, keys].transpose(-2, -1) / math.sqrt(q.shape[-1])
            out[b, :, i] = (torch.softmax(s, -1) @ v[b, :, keys])[:, 0]
    return out


@pytest.mark.parametrize("h,hkv", [(4, 4), (4, 2), (4, 1)])  # MHA, GQA, MQA
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 3, 20])
def test_sdpa_equals_reference_equals_loop(h, hkv, causal, window):
    q, k, v = _qkv(h=h, hkv=hkv)
    ref = attention_reference(q, k, v, is_causal=causal, window=window)
    torch.testing.assert_close(attention_sdpa(q, k, v, is_causal=causal, window=window), ref, **FP32)
    torch.testing.assert_close(ref, _loop(q, k, v, window, causal), **FP32)


@pytest.mark.parametrize("causal", [True, False])
def test_with_padding_mask_and_gqa(causal):
    q, k, v = _qkv(h=4, hkv=2)
    key_mask = torch.tensor([[1] * 9, [0, 0, 0, 1, 1, 1, 1, 1, 1]])  # second row left-padded
    mask = build_mask(9, 9, causal=causal, key_mask=key_mask)
    ref = attention_reference(q, k, v, mask=mask, window=3)
    torch.testing.assert_close(attention_sdpa(q, k, v, mask=mask, window=3), ref, **FP32)
    real = slice(3, None)  # rows of real tokens (padding rows are opened fully, their outputs are ignored)
    torch.testing.assert_close(ref[1:, :, real], _loop(q, k, v, 3, causal, key_mask)[1:, :, real], **FP32)
    torch.testing.assert_close(ref[:1], _loop(q, k, v, 3, causal)[:1], **FP32)


def test_window_at_least_length_is_full_attention():
    q, k, v = _qkv()
    torch.testing.assert_close(attention_reference(q, k, v, is_causal=True, window=9),
                               attention_reference(q, k, v, is_causal=True), **FP32)
    assert not torch.allclose(attention_reference(q, k, v, is_causal=True, window=4),
                              attention_reference(q, k, v, is_causal=True))


def _model(window, impl="reference", **kw):
    torch.manual_seed(0)
    return build_model(preset("gpt-tiny", attn__window=window, attn__impl=impl, attn__n_kv_heads=2, **kw)).eval()


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_model_paths_agree_and_window_changes_output(impl):
    ids = torch.randint(0, 256, (2, 24))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, :5] = 0
    with torch.no_grad():
        ref = _model(4)(ids, attention_mask=mask)
        out = _model(4, impl)(ids, attention_mask=mask)
        full = _model(None)(ids, attention_mask=mask)
    torch.testing.assert_close(out, ref, **FP32)
    torch.testing.assert_close(out[0, :4], full[0, :4], **FP32)  # the first `window` positions see everything
    assert not torch.allclose(out[:, 8:], full[:, 8:])


@pytest.mark.parametrize("impl", ["reference", "sdpa"])
def test_cached_generation_equals_full_forward_and_cache_keeps_window(impl):
    model, window = _model(5, impl), 5
    ids = torch.randint(0, 256, (3, 20))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(3)
        steps = torch.cat([model(ids[:, t:t + 1], state=state) for t in range(20)], dim=1)
        state2 = model.init_state(3)  # prefill 7, then one by one
        parts = [model(ids[:, :7], state=state2)] + [model(ids[:, t:t + 1], state=state2) for t in range(7, 20)]
    torch.testing.assert_close(steps, full, **FP32)
    torch.testing.assert_close(torch.cat(parts, 1), full, **FP32)
    caches = [layer["mixer"]["cache"] for layer in state.layers]
    assert all(isinstance(c, SlidingKVCache) and c.k.shape[2] == window - 1 for c in caches)


def test_cache_reorder_and_position_check():
    cache = SlidingKVCache(3, 2, 3, 4)
    k = torch.arange(3 * 2 * 5 * 4, dtype=torch.float32).view(3, 2, 5, 4)
    k_all, _ = cache.update(k, k, 0)
    assert k_all.shape[2] == 5 and torch.equal(cache.k, k[:, :, 3:])
    cache.reorder(torch.tensor([2, 0, 1]))
    assert torch.equal(cache.k, k[[2, 0, 1], :, 3:])
    with pytest.raises(ValueError, match="positions up to 5"):
        cache.update(k[:, :, :1], k[:, :, :1], 9)


def test_window_must_be_positive_integer():
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ConfigError, match="attn.window"):
            preset("gpt-tiny", attn__window=bad)


def test_window_pairs_counts_the_band():
    # causal, T=6, window 3: keys per query 1,2,3,3,3,3
    assert window_pairs(6, 6, 3, True, exact=True) == 15
    assert window_pairs(6, 6, 3, True, exact=False) == 18  # T·window
    # symmetric, T=5, window 2: 2,3,3,3,2
    assert window_pairs(5, 5, 2, False, exact=True) == 13
    # one decoding query at position 10 sees `window` keys
    assert window_pairs(1, 11, 4, True, exact=True) == 4
    for tq, tk, w, causal in [(7, 7, 3, True), (5, 9, 4, True), (6, 6, 2, False), (3, 3, 10, True)]:
        q, k, _ = _qkv(b=1, h=1, hkv=1, tq=tq, tk=tk)
        from archlab.nn.attention import combine_masks
        n = int(combine_masks(None, causal, tq, tk, window=w).sum())
        assert window_pairs(tq, tk, w, causal, exact=True) == n


def test_cost_model_counts_t_times_window():
    T, w, d, heads, layers = 64, 8, 64, 4, 2  # gpt-tiny: d_model 64, 4 heads, 2 layers
    full = model_cost(preset("gpt-tiny"), seq_len=T)
    win = model_cost(preset("gpt-tiny", attn__window=w), seq_len=T)
    core = [r for r in win.rows if r.kind == "attn-core"]
    assert len(core) == layers
    assert all(r.macs == 2 * heads * T * w * (d // heads) for r in core)  # 2·H·T·window·d, not 2·H·T²·d
    full_core = sum(r.macs for r in full.rows if r.kind == "attn-core")
    assert full.macs - win.macs == full_core - sum(r.macs for r in core)
    half = model_cost(preset("gpt-tiny", attn__window=w), seq_len=T, causal_half=True)
    pairs = sum(min(i + 1, w) for i in range(T))
    assert all(r.macs == 2 * heads * pairs * (d // heads) for r in half.rows if r.kind == "attn-core")


def test_sinusoid_base_is_a_config_key():
    from archlab.nn.position import sinusoidal_table

    base, D = 100.0, 16
    table = sinusoidal_table(40, D, base=base)
    for pos, i in [(7, 3), (33, 0), (21, 7)]:
        assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / base ** (2 * i / D)), abs_tol=1e-6)
        assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / base ** (2 * i / D)), abs_tol=1e-6)
    torch.manual_seed(0)
    m = build_model(preset("gpt-tiny", pos__kind="sinusoidal", pos__base=base))
    d_model = m.cfg.d_model
    torch.testing.assert_close(m.pos_embed.table, sinusoidal_table(m.cfg.max_seq_len, d_model, base=base))
    assert not torch.allclose(m.pos_embed.table, sinusoidal_table(m.cfg.max_seq_len, d_model))
    with pytest.raises(ConfigError, match="pos.base"):
        preset("gpt-tiny", pos__base=0)


def test_flop_counter_sees_the_masked_full_square():
    """torch's kernels (reference matmuls, SDPA on meta) compute the whole T² and mask it: FlopCounterMode counts
    exactly the analytic T·window MACs plus the masked-out pairs, 2·H·d·(T² − T·window) per layer."""
    from archlab.cost.crosscheck import crosscheck

    T, w, hd, layers = 32, 8, 64, 2
    for spec, device in [(preset("gpt-tiny", attn__window=w, attn__impl="reference"), "cpu"),
                         (preset("gpt-tiny", attn__window=w), "meta")]:
        cc = crosscheck(spec, seq_len=T, device=device)
        assert cc.invisible == {}
        assert cc.counted_macs - cc.analytic_macs == layers * 2 * hd * (T * T - T * w)


def test_generate_and_beam_search_with_the_sliding_cache():
    """Greedy `generate` = argmax of repeated full forwards; beam search (cache reordered) = without a cache."""
    from archlab.generate import beam_search, generate

    model = _model(4, "sdpa")
    prompt = torch.randint(0, 256, (2, 5))
    out = generate(model, prompt, 10, temperature=0)
    ids = prompt
    with torch.no_grad():
        for _ in range(10):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ids)
    kw = dict(bos_id=0, eos_id=1, beam_size=3, max_new_tokens=8)
    assert beam_search(model, prompt, **kw) == beam_search(model, prompt, use_cache=False, **kw)


def test_other_cache_layouts_are_refused_not_misaligned():
    from archlab.perf.static_decode import StaticDecoder

    dec = StaticDecoder(_model(4, "sdpa"), 16)
    with pytest.raises(ValueError, match="attn.window=4 decodes only with the SlidingKVCache"):
        dec.prefill(torch.randint(0, 256, (1, 5)))
