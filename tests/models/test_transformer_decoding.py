"""KV-cached decoding equals the full forward pass; causal models do not see the future."""
import pytest
import torch
from _decoding_checks import (
    assert_decoder_cache_matches_full_forward,
    assert_encoder_decoder_cache_matches_full_forward,
)

from archlab.models import build_model, preset

FP32 = dict(atol=1e-5, rtol=1.3e-6)


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny"])
def test_decoder_kv_cache_matches_full_forward(name):
    torch.manual_seed(0)
    assert_decoder_cache_matches_full_forward(build_model(name).eval())


@pytest.mark.parametrize("overrides", [
    {},
    {"block.decoder_order": ["cross", "ffn"]},  # cross-attention alone, no masked self-attention (seed 000)
    {"block.order": ["cross", "ffn"]},  # no self-attention anywhere: encoder [ffn], decoder [cross, ffn]
], ids=["default", "cross_alone", "no_self_attention"])
def test_encoder_decoder_kv_cache_matches_full_forward(overrides):
    torch.manual_seed(0)
    assert_encoder_decoder_cache_matches_full_forward(build_model(preset("transformer-tiny", **overrides)).eval())


@pytest.mark.parametrize("overrides", [{}, {"pos.kind": "rope"}, {"block.norm": "post"}, {"attn.n_kv_heads": 1}])
def test_causal_output_ignores_future_tokens(overrides):
    torch.manual_seed(0)
    model = build_model(preset("gpt-tiny", **overrides)).eval()
    ids = torch.randint(0, 256, (1, 12))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 256
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], **FP32)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_switching_the_mask_off_lets_the_model_see_the_future():
    torch.manual_seed(0)
    model = build_model(preset("gpt-tiny", **{"attn.causal": False})).eval()
    ids = torch.randint(0, 256, (1, 12))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 256
    with torch.no_grad():
        assert not torch.allclose(model(ids)[:, :7], model(changed)[:, :7])


def test_reference_and_sdpa_models_agree_with_padding():
    torch.manual_seed(0)
    fast = build_model(preset("llama-tiny")).eval()
    ref = build_model(preset("llama-tiny", **{"attn.impl": "reference"})).eval()
    ref.load_state_dict(fast.state_dict())
    ids = torch.randint(0, 256, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 7:] = 0
    with torch.no_grad():
        torch.testing.assert_close(fast(ids, attention_mask=mask), ref(ids, attention_mask=mask), **FP32)


def test_encoder_is_bidirectional_and_classifies():
    torch.manual_seed(0)
    model = build_model(preset("bert-tiny", **{"head.n_classes": 3})).eval()
    ids = torch.randint(0, 256, (2, 10))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    with torch.no_grad():
        assert not torch.allclose(model(ids)[:, 0], model(changed)[:, 0])
        assert model.classify(ids).shape == (2, 3)
