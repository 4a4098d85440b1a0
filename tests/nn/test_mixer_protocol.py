"""The mixer interface (src/archlab/nn/mixer.py): every registered mixer — and cross-attention and the FFN, the other
Block sub-layers — is a Mixer with forward(x, inputs: MixerInputs) and no keyword catch-all; the capabilities it
declares hold (a cache decodes as the full forward does, a padding-aware mixer ignores left padding, the others
refuse it); attention's cost reads its construction, not the recorded call, and its numbers are pinned."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from archlab import registry
from archlab.cost import model_cost
from archlab.cost.model_cost import meta_model
from archlab.cost.walk import Call, record_calls, walk
from archlab.models import build_model, preset
from archlab.nn.attention import AttentionConfig, CrossAttention, attention_reference
from archlab.nn.cache import KVCache, SlidingKVCache, reorder_rows
from archlab.nn.mixer import NO_INPUTS, Mixer, MixerInputs
from archlab.registry import Context

KINDS = registry.names("mixer")
D, T = 16, 9


def _all_subclasses(cls):
    return {cls} | {s for sub in cls.__subclasses__() for s in _all_subclasses(sub)}


def _mixer(kind: str) -> Mixer:
    entry = registry.entry("mixer", kind)
    cfg = entry.config(n_heads=2) if entry.config is AttentionConfig else entry.config()
    return entry.builder(cfg, Context(D, max_len=32)).double().eval()


def test_every_registered_mixer_is_a_mixer_with_bool_capabilities():
    for kind in KINDS:
        cls = registry.entry("mixer", kind).builder
        assert issubclass(cls, Mixer), kind
        for cap in ("uses_padding_mask", "is_cross", "supports_cache", "fixed_length"):
            assert isinstance(getattr(cls, cap), bool), (kind, cap)
        if cls.supports_cache:
            assert cls.init_state is not Mixer.init_state, f"{kind} declares supports_cache without init_state"


def test_no_mixer_forward_has_a_keyword_catch_all():
    import archlab.nn  # noqa: F401  (every component module registers, so every Mixer subclass exists)

    classes = _all_subclasses(Mixer)
    assert {CrossAttention, registry.entry("ffn", "mlp").builder} <= classes
    assert {registry.entry("mixer", k).builder for k in KINDS} <= classes
    for cls in classes:
        params = list(inspect.signature(cls.forward).parameters.values())
        kinds = {p.kind for p in params}
        assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds, cls
        assert [p.name for p in params] == ["self", "x", "inputs"], cls


@pytest.mark.parametrize("kind", KINDS)
def test_every_mixer_runs_through_the_protocol_and_its_cache_decodes_like_the_full_forward(kind):
    torch.manual_seed(0)
    m, x = _mixer(kind), torch.randn(2, T, D, dtype=torch.float64)
    full = m(x, MixerInputs(positions=torch.arange(T), causal=True))
    assert full.shape == x.shape
    assert torch.equal(m(x, MixerInputs(positions=torch.arange(T), causal=True)), full)  # no state: nothing kept
    if kind != "attention":
        torch.testing.assert_close(m(x), full)  # the default inputs are a plain full forward
    assert m.supports_cache
    state = m.init_state(2, T, dtype=torch.float64)
    outs = [m(x[:, :4], MixerInputs(positions=torch.arange(4), causal=True, state=state))]
    for t in range(4, T):
        outs.append(m(x[:, t:t + 1], MixerInputs(positions=torch.arange(t, t + 1), pos=t, causal=True, state=state)))
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_declared_padding_capability_holds_in_the_model(kind):
    """uses_padding_mask: left padding leaves the real tokens' logits as unpadded; without it, it is refused."""
    torch.manual_seed(0)
    model = build_model(preset(f"mixer-{kind}-tiny")).eval()
    ids = torch.randint(1, 256, (1, 6))
    padded, mask = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids], 1), torch.tensor([[0, 0] + [1] * 6])
    with torch.no_grad():
        if model.decoder.blocks[0].sub["mixer"].uses_padding_mask:
            torch.testing.assert_close(model(padded, attention_mask=mask)[:, 2:], model(ids), atol=1e-5, rtol=1.3e-6)
        else:
            with pytest.raises(ValueError, match="left padding"):
                model(padded, attention_mask=mask)


def test_cross_attention_reads_the_memory_and_caches_its_keys():
    torch.manual_seed(0)
    m = CrossAttention(AttentionConfig(n_heads=2, impl="reference"), Context(D, causal=True)).double().eval()
    assert m.is_cross and not m.causal and m.window is None and m.supports_cache and m.uses_padding_mask
    x, mem = torch.randn(2, 3, D, dtype=torch.float64), torch.randn(2, 5, D, dtype=torch.float64)
    pad = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)[:, None, None, :]
    y = m(x, MixerInputs(memory=mem, memory_mask=pad))
    q, k, v = (m._heads(proj(t), 2) for proj, t in ((m.q_proj, x), (m.k_proj, mem), (m.v_proj, mem)))
    want = m.o_proj(attention_reference(q, k, v, mask=pad).transpose(1, 2).reshape(2, 3, D))
    torch.testing.assert_close(y, want, atol=1e-12, rtol=0)
    state = m.init_state(2, 3)
    m(x[:, :1], MixerInputs(memory=mem, memory_mask=pad, state=state))
    assert set(state) == {"kv"}
    torch.testing.assert_close(m(x[:, 1:], MixerInputs(memory=mem, memory_mask=pad, state=state)), y[:, 1:])


def test_inputs_are_one_frozen_vocabulary():
    names = {f.name for f in dataclasses.fields(MixerInputs)}
    assert names == {"positions", "pos", "causal", "attn_mask", "key_padding", "memory", "memory_mask", "state"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_INPUTS.causal = True  # the shared default cannot be changed by a mixer
    st = {}
    assert NO_INPUTS.with_state(st).state is st and NO_INPUTS.with_state(None) is NO_INPUTS


def test_one_reorder_for_every_cache():
    idx = torch.tensor([2, 0])
    kv, sliding = KVCache(3, 1, 4, 2), SlidingKVCache(3, 1, 3, 2)
    for c in (kv, sliding):
        c.update(torch.arange(3.0)[:, None, None, None].expand(3, 1, 2, 2), torch.zeros(3, 1, 2, 2), 0)
    layer = {"mixer": {"cache": kv, "h": torch.arange(3.0), "kv": (torch.arange(3.0),) * 2}, "s": {"c": sliding}}
    reorder_rows(layer, idx)
    assert kv.k[:, 0, 0, 0].tolist() == sliding.k[:, 0, 0, 0].tolist() == [2.0, 0.0]
    assert layer["mixer"]["h"].tolist() == [2.0, 0.0] and layer["mixer"]["kv"][1].tolist() == [2.0, 0.0]
    assert reorder_rows(torch.arange(6.0).view(2, 3), idx, dim=1).tolist() == [[2.0, 0.0], [5.0, 3.0]]


# ----------------------------------------------------------------------------------------------- cost
def _core_rows(cfg, src_len: int, tgt_len: int, causal_half: bool, keep_args: bool = True):
    m = meta_model(cfg)
    src = torch.zeros(2, src_len, dtype=torch.long, device="meta")
    tgt = torch.zeros(2, tgt_len, dtype=torch.long, device="meta")
    calls = record_calls(m, lambda m: m(src, decoder_input_ids=tgt))
    if not keep_args:  # the handlers may read x's shape and nothing else of a call
        calls = {k: [Call(c.args[:1], {}, c.out) for c in cs] for k, cs in calls.items()}
    rows = walk(m, calls, causal_half=causal_half, cfg=cfg)
    return [(r.name.split(".sub.")[1], r.macs, r.ops, r.in_elems, r.out_elems) for r in rows
            if r.kind == "attn-core" and ".blocks.0." in r.name]


# pinned before the mixer interface existed (the handler then read the recorded `memory=`/`is_causal=` kwargs)
PINNED = {
    (None, False): [("mixer.core", 12544, 1960, 2688, 896), ("mixer.core", 6400, 1000, 1920, 640),
                    ("cross.core", 8960, 1400, 2432, 640)],
    (None, True): [("mixer.core", 12544, 1960, 2688, 896), ("mixer.core", 3840, 1000, 1920, 640),
                   ("cross.core", 8960, 1400, 2432, 640)],
    (3, False): [("mixer.core", 8960, 1400, 2176, 896), ("mixer.core", 3840, 600, 1408, 640),
                 ("cross.core", 8960, 1400, 2432, 640)],
    (3, True): [("mixer.core", 7424, 1400, 2176, 896), ("mixer.core", 3072, 600, 1408, 640),
                ("cross.core", 8960, 1400, 2432, 640)],
}


@pytest.mark.parametrize("window, half", sorted(PINNED, key=str))
def test_cross_and_windowed_attention_cost_is_unchanged(window, half):
    """transformer-tiny, source S=7, target T=5: encoder self (band), decoder self (causal), cross (S keys)."""
    cfg = preset("transformer-tiny", attn__window=window)
    assert _core_rows(cfg, 7, 5, half) == PINNED[(window, half)]
    assert _core_rows(cfg, 7, 5, half, keep_args=False) == PINNED[(window, half)]


def test_windowed_attention_model_cost_is_unchanged():
    assert model_cost(preset("gpt-tiny", attn__window=5), batch=2, seq_len=12).macs == 2_783_232
    assert model_cost(preset("gpt-tiny", attn__window=5), batch=2, seq_len=12, causal_half=True).macs == 2_778_112
    assert model_cost(preset("bert-tiny", attn__window=4), batch=2, seq_len=12).macs == 2_893_824
    tt = model_cost(preset("transformer-tiny", attn__window=3), batch=2, seq_len=12)
    assert tt.macs == 4_448_256
    cross = [r for r in tt.rows if r.kind == "attn-core" and r.extra["cross"]]
    assert cross and all(r.extra["window"] is None and "window" not in r.note for r in cross)
