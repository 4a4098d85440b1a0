"""Marian details transformers keeps and archlab must too: a decoder start token other than pad (issue 18,
defect 3) and shared encoder/decoder embeddings with an untied head (valid in transformers 5)."""
from __future__ import annotations

import json

import pytest
import torch
from _interop_util import batch, max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.interop import decoder_start_id, from_hf, to_hf  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

T = transformers
V = 101
START, PAD = V - 6, V - 1


def _marian(**kw):
    base = dict(vocab_size=V, d_model=48, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                pad_token_id=PAD, decoder_start_token_id=START, eos_token_id=0, forced_eos_token_id=None,
                scale_embedding=True)
    torch.manual_seed(0)
    return scramble(T.MarianMTModel(T.MarianConfig(**{**base, **kw})))


def test_decoder_start_token_other_than_pad_survives_export(tmp_path):
    hf_model = _marian()
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    assert decoder_start_id(model) == START
    src, mask = batch(V - 1)
    want = hf_greedy(hf_model, src, 24, attention_mask=mask)  # transformers' own default start token
    assert torch.equal(greedy(model, src, 24, attention_mask=mask), want)  # parity.greedy's default start
    with_pad = hf_greedy(hf_model, src, 24, attention_mask=mask, decoder_start_token_id=PAD)
    assert not torch.equal(with_pad, want), "degenerate test: the start token does not change the output"
    to_hf(model, tmp_path / "export")
    assert json.loads((tmp_path / "export" / "config.json").read_text())["decoder_start_token_id"] == START
    back = T.MarianMTModel.from_pretrained(tmp_path / "export").eval()
    assert torch.equal(hf_greedy(back, src, 24, attention_mask=mask), want)


def test_shared_embeddings_with_untied_head(tmp_path):
    hf_model = _marian(share_encoder_decoder_embeddings=True, tie_word_embeddings=False)
    emb = hf_model.model
    assert not torch.equal(emb.encoder.embed_tokens.weight, emb.decoder.embed_tokens.weight)  # three tables
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    src, src_mask = batch(V - 1)
    tgt, tgt_mask = batch(V - 1, t=8, seed=2, pad_from=5)
    kw = dict(attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    with torch.no_grad():
        ref = hf_model(src, **kw).logits
        assert max_diff(model(src, **kw), ref, tgt_mask) <= 1e-4
        to_hf(model, tmp_path / "export")
        back = T.MarianMTModel.from_pretrained(tmp_path / "export").eval()
        assert max_diff(back(src, **kw).logits, ref, tgt_mask) <= 1e-4
    # an archlab model with one shared table and an untied head exports every table transformers 5 reads
    from archlab.config import apply_overrides
    from archlab.models import build_model, preset

    cfg = apply_overrides(preset("transformer-tiny"), {"pos.sinusoidal_layout": "split", "norm.eps": 1e-5,
                                                      "pad_token_id": 0, "head.tie": False})
    torch.manual_seed(1)
    ours = build_model(cfg).eval()
    to_hf(ours, tmp_path / "untied")
    hf2 = T.MarianMTModel.from_pretrained(tmp_path / "untied").eval()
    ids = torch.randint(1, 256, (2, 9))
    with torch.no_grad():
        assert max_diff(hf2(ids, decoder_input_ids=ids).logits, ours(ids, decoder_input_ids=ids)) <= 1e-4
