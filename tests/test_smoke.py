"""Every tiny Transformer preset runs, and its outputs depend on exactly the tokens its shape says they may:
decoders (and the decoder side of the encoder-decoder) are causal, the encoder-only model is bidirectional,
and batch rows do not see each other."""
import pytest
import torch

from archlab.models import build_model

CAUSAL = {"gpt-tiny": True, "llama-tiny": True, "bert-tiny": False, "transformer-tiny": True}


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_every_tiny_preset_runs_forward_and_sees_only_what_it_should(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    V = model.cfg.vocab_size
    enc_dec = model.cfg.shape == "encoder_decoder"
    src = torch.randint(0, V, (2, 12))
    tgt = src[:, :7].clone() if enc_dec else src

    def run(src, tgt):
        with torch.no_grad():
            return model(src, decoder_input_ids=tgt) if enc_dec else model(tgt)

    out = run(src, tgt)
    assert out.shape == (2, tgt.shape[1], V) and torch.isfinite(out).all()
    # change the last (decoder) token of row 0 only
    t2 = tgt.clone()
    t2[0, -1] = (t2[0, -1] + 1) % V
    out2 = run(src if enc_dec else t2, t2)
    assert not torch.allclose(out2[0, -1], out[0, -1])  # the changed position's output moves
    torch.testing.assert_close(out2[1], out[1])  # the other row is untouched
    earlier_same = torch.allclose(out2[0, :-1], out[0, :-1], atol=1e-6)
    assert earlier_same == CAUSAL[name], "causal models must ignore later tokens; bidirectional ones must not"
    if enc_dec:  # every decoder position reads the whole source through cross-attention
        s2 = src.clone()
        s2[0, -1] = (s2[0, -1] + 1) % V
        out3 = run(s2, tgt)
        assert (out3[0] - out[0]).abs().amax(dim=-1).min() > 0
