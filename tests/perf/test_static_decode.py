"""The static-cache decode path computes the same logits and greedy tokens as the plain model."""
import pytest
import torch

from archlab.models import build_model, preset
from archlab.perf.static_decode import StaticDecoder, greedy_reference

FP32 = dict(atol=1e-5, rtol=1.3e-6)


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny"])
def test_static_cache_logits_match_full_forward(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    ids = torch.randint(0, model.cfg.vocab_size, (1, 13))
    dec = StaticDecoder(model, max_len=32)
    with torch.no_grad():
        full = model(ids)
        logits = [dec.prefill(ids[:, :5])[0]]
        logits += [dec.step(ids[:, t:t + 1], torch.tensor([t]))[0] for t in range(5, 13)]
    torch.testing.assert_close(torch.cat(logits, 1), full, **FP32)


@pytest.mark.parametrize("overrides", [{}, {"pos.kind": "rope", "attn.n_kv_heads": 2}, {"block.norm": "post"}])
def test_static_greedy_tokens_match_reference(overrides):
    torch.manual_seed(1)
    model = build_model(preset("gpt-tiny", **overrides)).eval()
    prompt = torch.randint(0, 256, (1, 6))
    dec = StaticDecoder(model, max_len=40)
    assert torch.equal(dec.generate(prompt, 20), greedy_reference(model, prompt, 20))
    assert torch.equal(dec.generate(prompt, 20), greedy_reference(model, prompt, 20))  # reuse after reset


def test_static_decoder_errors():
    model = build_model("gpt-tiny").eval()
    with pytest.raises(ValueError, match="max_len"):
        StaticDecoder(model, max_len=10_000)
    dec = StaticDecoder(model, max_len=8)
    with pytest.raises(ValueError, match="exceeds max_len"):
        dec.generate(torch.zeros(1, 4, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="decoder-only"):
        StaticDecoder(build_model("bert-tiny"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny"])
def test_compiled_cuda_graph_decode_matches_eager(name):
    torch.manual_seed(0)
    model = build_model(name).cuda().eval()
    prompt = torch.randint(0, 256, (1, 7), device="cuda")
    eager = StaticDecoder(model, max_len=64).generate(prompt, 40)
    compiled = StaticDecoder(model, max_len=64, compile=True).generate(prompt, 40)
    assert torch.equal(eager, compiled)
    assert torch.equal(eager, greedy_reference(model, prompt, 40))
