"""Seed-004 objectives: each loss checked against its definition on tiny random models."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archlab.data.tokenizers import CharTokenizer
from archlab.models import build_model, preset
from archlab.objectives import (
    IGNORE_INDEX,
    causal_lm_loss,
    classification_batch,
    classification_loss,
    mask_tokens,
    mlm_batch,
    mlm_loss,
    prefix_lm_batch,
    prefix_lm_loss,
    prefix_lm_mask,
    seq2seq_batch,
    seq2seq_loss,
    shift_labels,
)

TOK = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz .,")


def _model(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(preset(name, **{"vocab_size": TOK.vocab_size, **overrides})).eval()


def test_causal_loss_equals_manual_cross_entropy():
    model = _model("gpt-tiny")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(6, TOK.vocab_size, (3, 20), generator=g)
    loss, metrics = causal_lm_loss(model, {"input_ids": x})
    logits = model(x)
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, manual, rtol=1.3e-6, atol=1e-5)
    assert metrics["loss"] == pytest.approx(float(manual.detach()), rel=1e-5) and 0.0 <= metrics["accuracy"] <= 1.0
    # pre-shifted labels (LMBatches' convention) give the same loss on the overlapping positions
    loss2, _ = causal_lm_loss(model, {"input_ids": x[:, :-1], "labels": x[:, 1:]})
    torch.testing.assert_close(loss2, manual, rtol=1.3e-6, atol=1e-5)
    loss.backward()


def test_shift_labels_ignores_padding():
    x = torch.tensor([[7, 8, 9, 0, 0]])
    m = torch.tensor([[1, 1, 1, 0, 0]])
    assert shift_labels(x, m).tolist() == [[8, 9, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def test_mask_tokens_rates_and_specials():
    g = torch.Generator().manual_seed(123)
    B, T = 64, 512
    ids = torch.randint(6, TOK.vocab_size, (B, T), generator=g)
    ids[:, 0] = TOK.cls_id
    ids[:, -1] = TOK.sep_id
    attn = torch.ones(B, T, dtype=torch.long)
    ids[:, -50:-1] = TOK.pad_id
    attn[:, -50:-1] = 0
    masked, labels = mask_tokens(ids, TOK, g, p=0.15, attention_mask=attn)
    sel = labels != IGNORE_INDEX
    candidates = (ids >= 6) & attn.bool()
    rate = sel.sum() / candidates.sum()
    assert abs(float(rate) - 0.15) < 0.005
    assert not sel[~candidates].any()  # never special tokens or padding
    assert torch.equal(labels[sel], ids[sel])
    n = sel.sum().float()
    frac_mask = ((masked == TOK.mask_id) & sel).sum() / n
    frac_same = ((masked == ids) & sel).sum() / n
    frac_rand = ((masked != ids) & (masked != TOK.mask_id) & sel).sum() / n
    assert abs(float(frac_mask) - 0.8) < 0.015
    # a random replacement may draw the original token, so "unchanged" is 10% plus a little
    assert abs(float(frac_same) - 0.1) < 0.015 and abs(float(frac_rand) - 0.1) < 0.015
    assert not ((masked < 6) & sel & (masked != TOK.mask_id)).any()  # random tokens are never specials
    assert torch.equal(masked[~sel], ids[~sel])


def test_mask_tokens_deterministic():
    ids = torch.randint(6, TOK.vocab_size, (4, 64), generator=torch.Generator().manual_seed(0))
    a = mask_tokens(ids, TOK, torch.Generator().manual_seed(5))
    b = mask_tokens(ids, TOK, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_mlm_loss_only_on_masked_positions():
    model = _model("bert-tiny")
    ids = torch.randint(6, TOK.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1))
    batch = mlm_batch(ids, TOK, torch.Generator().manual_seed(2))
    loss, metrics = mlm_loss(model, batch)
    logits = model(batch["input_ids"])
    sel = batch["labels"] != IGNORE_INDEX
    manual = F.cross_entropy(logits[sel], batch["labels"][sel])
    torch.testing.assert_close(loss, manual, rtol=1.3e-6, atol=1e-5)
    assert metrics["n_tokens"] == float(sel.sum())
    # nothing masked: zero loss that still backpropagates
    empty = {"input_ids": ids, "labels": torch.full_like(ids, IGNORE_INDEX)}
    zero, m = mlm_loss(model, empty)
    assert float(zero.detach()) == 0.0 and m["n_tokens"] == 0.0
    zero.backward()


def test_prefix_lm_mask_semantics():
    m = prefix_lm_mask(torch.tensor([2]), 4)[0]
    assert m.int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]


def test_prefix_lm_model_sees_whole_prefix_but_not_continuation():
    model = _model("gpt-tiny", **{"attn.causal": False})
    T, P = 12, 5
    x = torch.randint(6, TOK.vocab_size, (1, T), generator=torch.Generator().manual_seed(3))
    mask = prefix_lm_mask(P, T, batch=1)

    def out(ids):
        return model(ids, attention_mask=mask)

    base = out(x)
    later_prefix = x.clone()
    later_prefix[0, P - 1] = (x[0, P - 1] - 6 + 1) % (TOK.vocab_size - 6) + 6  # change the last prefix token
    changed = out(later_prefix)
    assert not torch.allclose(base[0, 0], changed[0, 0])  # position 0 sees a later prefix token
    cont = x.clone()
    cont[0, P + 2] = (x[0, P + 2] - 6 + 1) % (TOK.vocab_size - 6) + 6  # change a continuation token
    changed = out(cont)
    torch.testing.assert_close(base[0, : P + 2], changed[0, : P + 2], rtol=1.3e-6, atol=1e-5)  # no peeking
    assert not torch.allclose(base[0, P + 2:], changed[0, P + 2:])
    # the loss covers exactly the continuation: targets at positions P..T-1, predicted from P-1..T-2
    batch = prefix_lm_batch(x, P)
    assert (batch["labels"][0, : P - 1] == IGNORE_INDEX).all() and (batch["labels"][0, P - 1: -1] >= 0).all()
    loss, _ = prefix_lm_loss(model, batch)
    manual = F.cross_entropy(base[0, P - 1: -1], x[0, P:])
    torch.testing.assert_close(loss, manual, rtol=1.3e-6, atol=1e-5)


def test_prefix_lm_refuses_causal_decoder():
    with pytest.raises(ValueError, match="attn.causal=false"):
        prefix_lm_loss(_model("gpt-tiny"), prefix_lm_batch(torch.randint(6, 30, (1, 8)), 3))


def test_seq2seq_batch_shift_and_loss():
    pairs = [("hello world", "hola mundo"), ("a b", "c")]
    b = seq2seq_batch(pairs, TOK, TOK, max_len=16)
    tgt = TOK.encode("hola mundo")
    assert b["decoder_input_ids"][0, : len(tgt) + 1].tolist() == [TOK.bos_id, *tgt]
    assert b["labels"][0, : len(tgt) + 1].tolist() == [*tgt, TOK.eos_id]
    assert b["labels"][1].tolist() == [*TOK.encode("c"), TOK.eos_id] + [IGNORE_INDEX] * (len(tgt) - 1)
    assert b["decoder_input_ids"][1, 2:].eq(TOK.pad_id).all() and b["decoder_attention_mask"][1].sum() == 2
    assert b["input_ids"][0, :11].tolist() == TOK.encode("hello world") and b["attention_mask"][1].sum() == 3
    # labels are decoder inputs shifted left by one (teacher forcing)
    real = b["decoder_attention_mask"].bool()
    assert torch.equal(b["labels"][:, :-1][real[:, 1:]], b["decoder_input_ids"][:, 1:][real[:, 1:]])
    short = seq2seq_batch([("abcdefgh", "abcdefgh")], TOK, TOK, max_len=4)
    assert short["input_ids"].shape == (1, 4) and short["labels"].shape == (1, 4)
    model = _model("transformer-tiny")
    loss, metrics = seq2seq_loss(model, b)
    logits = model(b["input_ids"], attention_mask=b["attention_mask"], decoder_input_ids=b["decoder_input_ids"],
                   decoder_attention_mask=b["decoder_attention_mask"])
    valid = b["labels"] != IGNORE_INDEX
    torch.testing.assert_close(loss, F.cross_entropy(logits[valid], b["labels"][valid]), rtol=1.3e-6, atol=1e-5)
    assert metrics["n_tokens"] == float(valid.sum())


def test_classification_batch_and_loss():
    model = _model("bert-tiny", **{"head.n_classes": 3})
    b = classification_batch([("to be or not", 2), ("yes", 0)], TOK, max_len=8)
    assert b["input_ids"][0].tolist() == [TOK.cls_id, *TOK.encode("to be "), TOK.sep_id]
    assert b["input_ids"][1].tolist()[:5] == [TOK.cls_id, *TOK.encode("yes"), TOK.sep_id]
    assert b["attention_mask"][1].sum() == 5 and b["labels"].tolist() == [2, 0]
    loss, metrics = classification_loss(model, b)
    manual = F.cross_entropy(model.classify(b["input_ids"], b["attention_mask"]), b["labels"])
    torch.testing.assert_close(loss, manual, rtol=1.3e-6, atol=1e-5)
    assert set(metrics) == {"loss", "accuracy"} and all(isinstance(v, float) for v in metrics.values())
    b["labels"] = torch.tensor([3, 0])
    with pytest.raises(ValueError, match="class label 3 out of range"):
        classification_loss(model, b)


def test_out_of_range_label_is_a_clear_error():
    model = _model("gpt-tiny")
    x = torch.randint(6, TOK.vocab_size, (1, 8))
    with pytest.raises(ValueError, match="label id .* out of range"):
        causal_lm_loss(model, {"input_ids": x, "labels": torch.full_like(x, TOK.vocab_size + 5)})
