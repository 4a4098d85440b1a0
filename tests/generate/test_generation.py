"""Generation: cached == uncached, sampling filters, stop tokens, beam search, bad input."""
from __future__ import annotations

import pytest
import torch

from archlab.generate import beam_search, filter_logits, generate
from archlab.models import build_model, preset


@pytest.fixture(scope="module", params=["gpt-tiny", "llama-tiny"])
def decoder(request):
    torch.manual_seed(0)
    return build_model(preset(request.param, max_seq_len=32)).eval()


@pytest.fixture(scope="module")
def encdec():
    torch.manual_seed(0)
    return build_model(preset("transformer-tiny", max_seq_len=32)).eval()


@pytest.mark.parametrize("kw", [{"temperature": 0.0}, {"temperature": 1.0, "top_k": 20},
                                {"temperature": 0.7, "top_p": 0.9}])
def test_cached_equals_uncached_decoder(decoder, kw):
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(1))
    # 40 new tokens with a 32-token context: GPT (learned positions) slides its window, LLaMA (RoPE) extends
    a = generate(decoder, prompt, 40, use_cache=True, generator=torch.Generator().manual_seed(2), window=True, **kw)
    b = generate(decoder, prompt, 40, use_cache=False, generator=torch.Generator().manual_seed(2), window=True, **kw)
    assert a.shape == (2, 45)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], prompt)


def test_cached_equals_uncached_encoder_decoder(encdec):
    src = torch.randint(3, 256, (3, 7), generator=torch.Generator().manual_seed(3))
    a = generate(encdec, [[1]], 20, src_ids=src, temperature=0.0)
    b = generate(encdec, [[1]], 20, src_ids=src, temperature=0.0, use_cache=False)
    assert torch.equal(a, b)


def test_beam_search_cached_uncached_and_greedy(encdec):
    src = torch.randint(3, 256, (2, 6), generator=torch.Generator().manual_seed(4))
    a = beam_search(encdec, src, bos_id=1, eos_id=2, beam_size=3, max_new_tokens=12)
    b = beam_search(encdec, src, bos_id=1, eos_id=2, beam_size=3, max_new_tokens=12, use_cache=False)
    assert a == b
    g = beam_search(encdec, src, bos_id=1, eos_id=2, beam_size=1, max_new_tokens=12)
    greedy = generate(encdec, [[1]], 12, src_ids=src, temperature=0.0)[:, 1:].tolist()
    assert g == greedy  # beam size 1 is greedy (no eos emitted by a random model in 12 steps here)


def test_beam_search_finds_higher_likelihood_than_greedy(encdec):
    src = torch.randint(3, 256, (4, 6), generator=torch.Generator().manual_seed(5))

    def logp(hyp, s):
        dec = torch.tensor([[1] + hyp])
        lp = encdec(s[None], decoder_input_ids=dec).log_softmax(-1)[0, :-1]
        return float(lp.gather(-1, dec[0, 1:, None]).sum().detach())

    beams = beam_search(encdec, src, bos_id=1, eos_id=2, beam_size=5, max_new_tokens=8, length_penalty=0.0)
    greedy = generate(encdec, [[1]], 8, src_ids=src, temperature=0.0)[:, 1:].tolist()
    for i in range(4):
        if len(beams[i]) == len(greedy[i]):
            assert logp(beams[i], src[i]) >= logp(greedy[i], src[i]) - 1e-5


def test_stop_tokens_finish_rows(decoder):
    prompt = torch.randint(0, 256, (3, 4), generator=torch.Generator().manual_seed(6))
    free = generate(decoder, prompt, 10, temperature=0.0)
    stop = int(free[0, 6])  # the third generated token of row 0
    out = generate(decoder, prompt, 10, temperature=0.0, stop_tokens=[stop], pad_id=0)
    row = out[0].tolist()
    first = row.index(stop, 4)
    assert all(t == 0 for t in row[first + 1:])


def test_filter_logits_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]


def test_bad_input_errors(decoder, encdec):
    if decoder.position_limit is not None:  # learned positions; RoPE extends (tests/generate/test_generation_hardening)
        with pytest.raises(ValueError, match="longer than the model's context max_seq_len=32"):
            generate(decoder, torch.zeros(1, 40, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"token id 999, outside the vocabulary \[0, 256\)"):
        generate(decoder, [[1, 999]], 5)
    with pytest.raises(ValueError, match="needs src_ids"):
        generate(encdec, [[1]], 5)
    with pytest.raises(ValueError, match="source has 40 tokens"):
        beam_search(encdec, torch.ones(1, 40, dtype=torch.long), bos_id=1, eos_id=2)
