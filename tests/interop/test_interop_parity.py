"""archlab == transformers on tiny random models of every supported architecture (fp32, ≤ 1e-4 max-abs).

For each: HF → archlab logits on a padded batch; archlab → HF export → `from_pretrained` → same logits;
and greedy decoding of 32 tokens identical token for token (decoders and the encoder-decoder).
"""
from __future__ import annotations

import pytest
import torch
from _interop_util import batch, max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.generate import generate  # noqa: E402
from archlab.interop import from_hf, to_hf  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

T = transformers
V = 101
TOL = 1e-4


def _gpt2(**kw):
    base = dict(vocab_size=V, n_embd=48, n_layer=2, n_head=4, n_positions=64, bos_token_id=None, eos_token_id=None)
    return T.GPT2LMHeadModel(T.GPT2Config(**{**base, **kw}))


def _llama(**kw):
    base = dict(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, bos_token_id=None, eos_token_id=None)
    return T.LlamaForCausalLM(T.LlamaConfig(**{**base, **kw}))


def _marian(**kw):
    base = dict(vocab_size=V, d_model=48, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                pad_token_id=V - 1, decoder_start_token_id=V - 1, eos_token_id=0, forced_eos_token_id=None)
    return T.MarianMTModel(T.MarianConfig(**{**base, **kw}))


def _mamba(**kw):
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2, conv_kernel=4,
                bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return T.MambaForCausalLM(T.MambaConfig(**{**base, **kw}))


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16, "rope_theta": 500000.0}
DECODERS = {
    "gpt2": lambda: _gpt2(),
    "gpt2-untied-relu-dff": lambda: _gpt2(tie_word_embeddings=False, activation_function="relu", n_inner=72),
    # GQA (6 query heads on 2 kv heads), head_dim 10 ≠ 48/6, llama3 RoPE scaling, untied head
    "llama-gqa-headdim-llama3": lambda: _llama(num_attention_heads=6, num_key_value_heads=2, head_dim=10,
                                               rope_parameters=LLAMA3),
    # MQA, tied head, linear RoPE scaling, biases on attention and MLP
    "llama-mqa-tied-linear-bias": lambda: _llama(num_key_value_heads=1, tie_word_embeddings=True,
                                                 rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                  "rope_theta": 10000.0},
                                                 attention_bias=True, mlp_bias=True),
    "mamba": lambda: _mamba(),
    "mamba-bias-untied": lambda: _mamba(use_bias=True, use_conv_bias=False, tie_word_embeddings=False,
                                        time_step_rank=5, state_size=4, hidden_act="silu"),
}
ENCDEC = {
    "marian-shared": lambda: _marian(scale_embedding=True, activation_function="swish"),
    "marian-unshared-untied": lambda: _marian(share_encoder_decoder_embeddings=False, tie_word_embeddings=False,
                                              activation_function="gelu", decoder_layers=3,
                                              scale_embedding=True),
}
BERTS = {
    "bert-base": lambda c: T.BertModel(c),
    "bert-mlm": lambda c: T.BertForMaskedLM(c),
    "bert-mlm-untied": lambda c: T.BertForMaskedLM(T.BertConfig(**{**c.to_dict(), "tie_word_embeddings": False})),
    "bert-cls": lambda c: T.BertForSequenceClassification(T.BertConfig(**{
        **{k: v for k, v in c.to_dict().items() if k not in ("id2label", "label2id")}, "num_labels": 3})),
}


def _roundtrip(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    to_hf(model, tmp_path / "export")
    back = type(hf_model).from_pretrained(tmp_path / "export").eval()
    return model, back


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_parity_export_and_greedy(name, tmp_path):
    torch.manual_seed(0)
    hf_model = scramble(DECODERS[name]())
    model, back = _roundtrip(hf_model, tmp_path)
    ids, mask = batch(V)
    with torch.no_grad():
        ref = hf_model(ids, attention_mask=mask).logits
        ours = model(ids, attention_mask=mask)
        exported = back(ids, attention_mask=mask).logits
    assert max_diff(ours, ref, mask) <= TOL
    assert max_diff(exported, ref, mask) <= TOL
    prompt = ids[:2, :5]
    want = hf_greedy(hf_model, prompt, 32)
    got = greedy(model, prompt, 32)
    assert torch.equal(got, want), f"{name}: greedy tokens differ\n{got}\n{want}"
    # the library's generator (temperature 0 = greedy) agrees too
    assert torch.equal(generate(model, prompt, 32, temperature=0)[:, 5:], want)
    assert len(set(want.flatten().tolist())) > 2, "degenerate test: greedy decoding repeats one token"


@pytest.mark.parametrize("name", list(ENCDEC))
def test_marian_parity_export_and_greedy(name, tmp_path):
    torch.manual_seed(0)
    hf_model = scramble(ENCDEC[name]())
    model, back = _roundtrip(hf_model, tmp_path)
    src, src_mask = batch(V - 1)
    tgt, tgt_mask = batch(V - 1, t=8, seed=2, pad_from=5)
    kw = dict(attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    with torch.no_grad():
        ref = hf_model(src, **kw).logits
        ours = model(src, **kw)
        exported = back(src, **kw).logits
    assert max_diff(ours, ref, tgt_mask) <= TOL
    assert max_diff(exported, ref, tgt_mask) <= TOL
    want = hf_greedy(hf_model, src, 32, attention_mask=src_mask, decoder_start_token_id=V - 1)
    got = greedy(model, src, 32, attention_mask=src_mask, decoder_start_token_id=V - 1)
    assert torch.equal(got, want), f"{name}: greedy tokens differ\n{got}\n{want}"
    start = torch.full((src.shape[0], 1), V - 1)
    lib = generate(model, start, 32, temperature=0, src_ids=src, src_mask=src_mask)[:, 1:]
    assert torch.equal(lib, want)
    assert len(set(want.flatten().tolist())) >= 2


@pytest.mark.parametrize("name", list(BERTS))
def test_bert_parity_and_export(name, tmp_path):
    torch.manual_seed(0)
    cfg = T.BertConfig(vocab_size=V, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    hf_model = scramble(BERTS[name](cfg))
    model, back = _roundtrip(hf_model, tmp_path)
    ids, mask = batch(V)
    types = (torch.arange(ids.shape[1]) >= 5).long().expand_as(ids)
    kw = dict(attention_mask=mask, token_type_ids=types)
    with torch.no_grad():
        ref_out, back_out = hf_model(ids, **kw), back(ids, **kw)
        if name == "bert-base":
            h = model.encode(ids, mask, types)
            assert max_diff(h, ref_out.last_hidden_state, mask) <= TOL
            assert max_diff(back_out.last_hidden_state, ref_out.last_hidden_state, mask) <= TOL
            assert max_diff(model.pooled(ids, mask, types), ref_out.pooler_output) <= TOL
        elif name == "bert-cls":
            assert model.cfg.head.n_classes == 3
            assert max_diff(model.classify(ids, mask, types), ref_out.logits) <= TOL
            assert max_diff(back_out.logits, ref_out.logits) <= TOL
        else:
            assert max_diff(model(ids, **kw), ref_out.logits, mask) <= TOL
            assert max_diff(back_out.logits, ref_out.logits, mask) <= TOL


BARE = {
    "GPT2Model": lambda: T.GPT2Model(_gpt2().config),
    "LlamaModel": lambda: T.LlamaModel(_llama(num_key_value_heads=2).config),
    "MambaModel": lambda: T.MambaModel(_mamba().config),
}


@pytest.mark.parametrize("name", list(BARE))
def test_bare_base_models_load(name, tmp_path):
    """Checkpoints of the head-less classes (no 'transformer.'/'model.'/'backbone.' prefix) load too."""
    torch.manual_seed(0)
    hf_model = scramble(BARE[name]())
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    ids, mask = batch(V)
    to_hf(model, tmp_path / "export")
    back = type(hf_model).from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        ref = hf_model(ids, attention_mask=mask).last_hidden_state
        assert max_diff(model.hidden_states(ids, attention_mask=mask), ref, mask) <= TOL
        assert max_diff(back(ids, attention_mask=mask).last_hidden_state, ref, mask) <= TOL


def test_sharded_and_bf16_checkpoints(tmp_path):
    torch.manual_seed(0)
    hf_model = scramble(_llama(num_key_value_heads=2))
    hf_model.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ids, mask = batch(V)
    with torch.no_grad():
        ref = hf_model(ids, attention_mask=mask).logits
        assert max_diff(from_hf(tmp_path / "sharded")(ids, attention_mask=mask), ref, mask) <= TOL
        hf_model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
        model = from_hf(tmp_path / "bf16")  # loaded into fp32: the bf16 values exactly
        assert next(model.parameters()).dtype == torch.float32
        assert torch.equal(model.tok_embed.weight, hf_model.model.embed_tokens.weight.float())
