"""The decoding objects: Decoder prefill/step/slide against full forwards, StopTracker per row, Sampling, the loop."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from archlab.decoding import Decoder, Sampling, StopTracker, sample_loop
from archlab.generate import generate
from archlab.models import build_model, preset

TOL = {"atol": 1e-5, "rtol": 1.3e-6}


@pytest.fixture(scope="module", params=["gpt-tiny", "llama-tiny", "mamba-tiny"])
def decoder_model(request):
    torch.manual_seed(0)
    return build_model(preset(request.param, max_seq_len=16)).eval()


@pytest.fixture(scope="module")
def encdec():
    torch.manual_seed(0)
    return build_model(preset("transformer-tiny", max_seq_len=16)).eval()


def _ids(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 256, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_cache", [True, False])
@torch.no_grad()
def test_prefill_then_steps_equal_full_forward(decoder_model, use_cache):
    x = _ids(2, 12)
    dec = Decoder(decoder_model, max_new_tokens=7, use_cache=use_cache)
    torch.testing.assert_close(dec.prefill(x[:, :5]), decoder_model(x[:, :5])[:, -1], **TOL)
    for t in range(5, 12):
        dec.append(x[:, t])
        torch.testing.assert_close(dec.step(), decoder_model(x[:, :t + 1])[:, -1], **TOL)
    assert torch.equal(dec.ids, x)


@torch.no_grad()
def test_encoder_decoder_prefill_and_step(encdec):
    src, tgt = _ids(2, 6, 1), _ids(2, 5, 2)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    dec = Decoder(encdec, max_new_tokens=3, src=src, src_mask=mask)
    full = encdec(src, attention_mask=mask, decoder_input_ids=tgt)
    torch.testing.assert_close(dec.prefill(tgt[:, :3]), full[:, 2], **TOL)
    for t in (3, 4):
        dec.append(tgt[:, t])
        torch.testing.assert_close(dec.step(), full[:, t], **TOL)


@torch.no_grad()
def test_slide_rebuilds_the_window_from_the_last_max_seq_len_tokens(decoder_model):
    x = _ids(2, 19, 3)  # max_seq_len = 16
    dec = Decoder(decoder_model, max_new_tokens=10, window=True)
    dec.prefill(x[:, :14])
    for t in range(14, 19):
        dec.append(x[:, t])
        logits = dec.step()  # the cache fills at 16 tokens; the next steps slide
        torch.testing.assert_close(logits, decoder_model(x[:, max(0, t + 1 - 16):t + 1])[:, -1], **TOL)
    assert dec.state.pos == 16
    torch.testing.assert_close(dec.slide(), decoder_model(x[:, -16:])[:, -1], **TOL)


def test_stop_tracker_finishes_rows_independently():
    stop = StopTracker(3, 10, stop_tokens=[5, 6], pad_id=0)
    assert not stop.done and torch.equal(stop.mask(torch.tensor([7, 7, 7])), torch.tensor([7, 7, 7]))
    assert not stop.update(torch.tensor([5, 1, 2]))
    assert stop.finished.tolist() == [True, False, False]
    assert stop.mask(torch.tensor([7, 6, 7])).tolist() == [0, 6, 7]  # finished rows emit the pad
    assert not stop.update(torch.tensor([0, 6, 9]))
    assert stop.finished.tolist() == [True, True, False]
    assert stop.update(torch.tensor([0, 0, 5])) and stop.done and stop.produced == 3


def test_stop_tracker_pads_with_the_stop_token_and_counts_max_new_tokens():
    stop = StopTracker(2, 3, stop_tokens=[4])
    stop.update(torch.tensor([4, 1]))
    assert stop.mask(torch.tensor([9, 9])).tolist() == [4, 9]  # pad_id None: the stop token it emitted
    assert not stop.update(torch.tensor([4, 2])) and stop.update(torch.tensor([4, 3]))  # 3 tokens: over
    assert StopTracker(2, 0).done and not StopTracker(2, 1).done
    no_stops = StopTracker(1, 2)
    assert not no_stops.update(torch.tensor([4])) and no_stops.update(torch.tensor([4]))


def test_sampling_options():
    logits = torch.randn(4, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(Sampling(temperature=0).sample(logits), logits.argmax(-1))
    assert torch.equal(Sampling(temperature=1.0, top_k=1).sample(logits), logits.argmax(-1))
    with pytest.raises(ValueError, match="top_k=0"):
        Sampling(top_k=0)
    with pytest.raises(ValueError, match="top_p=1.5"):
        Sampling(top_p=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Sampling().temperature = 2.0


class _CountingDecoder(Decoder):
    steps = 0

    def step(self) -> torch.Tensor:
        self.steps += 1
        return super().step()


@torch.no_grad()
def test_sample_loop_matches_generate_and_never_feeds_the_last_token(decoder_model):
    prompt = _ids(2, 4, 4)
    dec = _CountingDecoder(decoder_model, max_new_tokens=6)
    out = sample_loop(dec, dec.prefill(prompt), Sampling(0.9, top_k=30), StopTracker(2, 6),
                      torch.Generator().manual_seed(1))
    want = generate(decoder_model, prompt, 6, temperature=0.9, top_k=30, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, want) and out.shape == (2, 10)
    assert dec.steps == 5
