"""The RNN encoder-decoder (seed 003): cached decoding = full forward, padding, attention weights, beam search,
the plain model's single link (the encoder's last state), parameter counts, and a 2-step `archlab train`."""
import itertools
import json

import pytest
import torch

from archlab.config import ConfigError, replace
from archlab.generate import beam_search, generate
from archlab.models import build_model, model_config_from_dict
from archlab.models.rnn_seq2seq import CELLS, RNNSeq2SeqConfig, count_parameters

V = 40


def _model(cell="gru", attention="none", **kw):
    torch.manual_seed(0)
    cfg = RNNSeq2SeqConfig(vocab_size=V, d_model=12, hidden=16, n_layers=2, cell=cell, attention=attention,
                           max_seq_len=32, init_range=0.3, **kw)
    return build_model(cfg).eval()


def _padded_batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, V, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    mask[2, 1:] = 0
    src = src.masked_fill(mask == 0, 0)  # pad id 0
    tgt = torch.randint(3, V, (3, 6), generator=g)
    return src, mask, tgt


COMBOS = list(itertools.product(CELLS, ("none", "additive", "multiplicative")))


@pytest.mark.parametrize("cell,attention", COMBOS)
def test_cached_step_decoding_equals_full_forward_and_reference(cell, attention):
    model = _model(cell, attention)
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        full = model(src, attention_mask=mask, decoder_input_ids=tgt)
        state = model.init_state(3, input_ids=src, attention_mask=mask)
        steps = torch.cat([model(src, decoder_input_ids=tgt[:, i:i + 1], state=state) for i in range(6)], 1)
        assert state.pos == 6
        torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)
        # the equations written out (a Python loop over layers and time) = torch's kernels on packed sequences
        ref = build_model(replace(model.cfg, impl="reference")).eval()
        ref.load_state_dict(model.state_dict())
        torch.testing.assert_close(ref(src, attention_mask=mask, decoder_input_ids=tgt), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell,attention", [(c, a) for c, a in COMBOS if c != "rnn" or a == "none"])
def test_padded_source_gives_the_unpadded_outputs(cell, attention):
    model = _model(cell, attention)
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        batch = model(src, attention_mask=mask, decoder_input_ids=tgt)
        for row in range(3):
            n = int(mask[row].sum())
            alone = model(src[row:row + 1, :n], decoder_input_ids=tgt[row:row + 1])
            torch.testing.assert_close(batch[row:row + 1], alone, atol=1e-5, rtol=0)
        # left padding (not what pack_padded_sequence takes) goes through the masked loop: same outputs
        n = int(mask[1].sum())
        left = torch.cat([torch.zeros(1, 7 - n, dtype=torch.long), src[1:2, :n]], 1)
        lmask = torch.cat([torch.zeros(1, 7 - n, dtype=torch.long), torch.ones(1, n, dtype=torch.long)], 1)
        torch.testing.assert_close(model(left, attention_mask=lmask, decoder_input_ids=tgt[1:2]), batch[1:2],
                                   atol=1e-5, rtol=0)


def test_plain_model_uses_the_last_real_state():
    model = _model("lstm")
    src, mask, _ = _padded_batch()
    with torch.no_grad():
        _, h, c, _ = model.encode(src, mask)
        for row in range(3):
            n = int(mask[row].sum())
            _, h1, c1, _ = model.encode(src[row:row + 1, :n])
            torch.testing.assert_close(h[:, row:row + 1], h1, atol=1e-6, rtol=0)
            torch.testing.assert_close(c[:, row:row + 1], c1, atol=1e-6, rtol=0)
            _, h_pad, _, _ = model.encode(src[row:row + 1])  # reading the padding as tokens would move the state
            if n < 7:
                assert not torch.allclose(h_pad, h1, atol=1e-4)


@pytest.mark.parametrize("attention", ["additive", "multiplicative"])
def test_attention_weights_sum_to_one_and_are_zero_on_padding(attention):
    model = _model("gru", attention)
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        w = model.attention_weights(src, tgt, attention_mask=mask)
    assert w.shape == (3, 6, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 6), atol=1e-6, rtol=0)
    assert bool((w.masked_select((mask == 0)[:, None, :].expand_as(w)) == 0).all())
    assert bool((w.masked_select((mask == 1)[:, None, :].expand_as(w)) > 0).all())
    torch.testing.assert_close(w[2, :, 0], torch.ones(6))  # a one-token source: all weight on it
    with pytest.raises(ValueError, match="no attention weights"):
        _model("gru").attention_weights(src, tgt, attention_mask=mask)


@pytest.mark.parametrize("cell,attention", [("gru", "none"), ("lstm", "multiplicative"), ("rnn", "additive")])
def test_beam_one_is_greedy_and_cache_changes_nothing(cell, attention):
    model = _model(cell, attention)
    torch.manual_seed(5)
    for p in model.parameters():  # wider weights: varied (not constant) greedy outputs
        torch.nn.init.normal_(p, 0.0, 0.6)
    src, mask, _ = _padded_batch()
    free = generate(model, [[1]], 10, src_ids=src, src_mask=mask, temperature=0.0)
    row0 = free[0, 1:].tolist()
    j = next(j for j in range(1, 10) if row0[j] not in row0[:j])
    eos = row0[j]  # a token greedy first emits mid-sentence in row 0: rows then stop at different lengths
    greedy = generate(model, [[1]], 10, src_ids=src, src_mask=mask, temperature=0.0, stop_tokens=[eos])[:, 1:]
    want = [list(itertools.takewhile(lambda t: t != eos, row)) for row in greedy.tolist()]
    assert len(want[0]) == j and len({tuple(w) for w in want}) > 1
    beam1 = beam_search(model, src, bos_id=1, eos_id=eos, beam_size=1, max_new_tokens=10, length_penalty=0.0,
                        src_mask=mask)
    assert beam1 == want
    uncached = generate(model, [[1]], 10, src_ids=src, src_mask=mask, temperature=0.0, stop_tokens=[eos],
                        use_cache=False)
    assert torch.equal(uncached[:, 1:], greedy)
    b3 = beam_search(model, src, bos_id=1, eos_id=eos, beam_size=3, max_new_tokens=10, src_mask=mask)
    assert b3 == beam_search(model, src, bos_id=1, eos_id=eos, beam_size=3, max_new_tokens=10, src_mask=mask,
                             use_cache=False)


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_plain_decoder_sees_only_the_encoders_last_state(attention, monkeypatch):
    """Replace every encoder output but the last state: the plain model's logits cannot change; the attention
    model's must (so the check has teeth)."""
    model = _model("lstm", attention)
    src, mask, tgt = _padded_batch()
    with torch.no_grad():
        want = model(src, attention_mask=mask, decoder_input_ids=tgt)
        real = model.encode

        def other_outputs(ids, m=None):
            out, h, c, mm = real(ids, m)
            return torch.randn_like(out) * 3, h, c, mm

        monkeypatch.setattr(model, "encode", other_outputs)
        got = model(src, attention_mask=mask, decoder_input_ids=tgt)
        state = model.init_state(3, input_ids=src, attention_mask=mask)
    if attention == "none":
        torch.testing.assert_close(got, want, atol=0, rtol=0)
        assert state.memory is None and state.keys is None  # nothing but (h, c) reaches the decoder
    else:
        assert not torch.allclose(got, want, atol=1e-3)


def test_parameter_count_by_hand():
    # V=50, D=16, H=24, 2-layer GRU (3 gates), Luong "general" attention, tied output layer:
    #   embedding 50·16 = 800
    #   encoder layer 0: 3·24·(16+24) + 2·3·24 = 3024; layer 1: 3·24·(24+24) + 144 = 3600  -> 6624; decoder 6624
    #   W_a 24·24 = 576; W_c 48·24 = 1152; out_proj 24·16 = 384; output bias 50
    cfg = RNNSeq2SeqConfig(vocab_size=50, d_model=16, hidden=24, n_layers=2, cell="gru", attention="multiplicative")
    with torch.device("meta"):
        n = build_model(cfg).num_parameters()
    assert n == 800 + 2 * 6624 + 576 + 1152 + 384 + 50 == 16210
    for cell, att, tie, hidden in itertools.product(CELLS, ("none", "additive", "multiplicative"), (True, False),
                                                    (16, 24)):
        c = replace(cfg, cell=cell, attention=att, tie_embeddings=tie, hidden=hidden,
                    attn_dim=8 if att == "additive" else 0)
        with torch.device("meta"):
            assert build_model(c).num_parameters() == count_parameters(c), c


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="model.attention"):
        model_config_from_dict({"arch": "rnn_seq2seq", "attention": "dot"})
    with pytest.raises(ConfigError, match="model.cell"):
        model_config_from_dict({"arch": "rnn_seq2seq", "cell": "transformer"})
    with pytest.raises(ConfigError, match="attn_dim"):
        model_config_from_dict({"arch": "rnn_seq2seq", "attn_dim": 8})
    with pytest.raises(ConfigError, match="unknown config key 'model.n_heads'"):
        model_config_from_dict({"arch": "rnn_seq2seq", "n_heads": 4})
    cfg = model_config_from_dict({"preset": "rnn-attn-seq2seq-tiny", "cell": "lstm"})
    assert cfg.shape == "encoder_decoder" and cfg.cell == "lstm" and cfg.attention == "additive"


def test_two_step_train_translate_and_preflight(tmp_path, monkeypatch, capsys):
    from archlab.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = ["train.steps=2", "train.eval_every=0", "train.eval_batches=1", "train.checkpoint_every=0",
            "train.batch_size=4", "model.d_model=16", "model.hidden=24", "task.bpe_vocab=300",
            "task.max_train_pairs=300", "task.max_len=24"]
    config = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "configs" /
                 "translation_en_es_rnn_attention.yaml")
    sets = [a for kv in tiny for a in ("--set", kv)]
    assert main(["train", config, "--out", "mt", "--dry-run", *sets]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["model"] == "lstm-attn-seq2seq" and dry["params"] > 0
    assert main(["train", config, "--out", "mt", "--quiet", *sets]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 2 and out["train_loss"] > 0
    assert main(["translate", "mt", "--score", "test", "--limit", "2", "--beam", "2", "--max-new-tokens", "4"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["n"] == 2 and "bleu" in scored


def test_preflight_prices_activations_and_cost_walk_matches_the_counter():
    from archlab.cost.crosscheck import crosscheck
    from archlab.train.preflight import estimate_training_memory

    cfg = model_config_from_dict({"preset": "lstm-attn-seq2seq-tiny"})
    est = estimate_training_memory(cfg, batch=4, seq_len=16)
    assert est.params == count_parameters(cfg) and est.activations > 0  # the meta walk ran, not the fallback
    cc = crosscheck("rnn-attn-seq2seq-tiny", batch=2, seq_len=8)  # additive score: v Linear + context matmul
    assert cc.ok() and cc.counted_macs == cc.analytic_macs and not cc.invisible
