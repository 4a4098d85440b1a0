"""Presets have their real sizes; LLaMA presets equal transformers.LlamaForCausalLM."""
import pytest
import torch

from archlab.models import build_model, preset


def _count(name_or_cfg) -> int:
    with torch.device("meta"):
        return build_model(name_or_cfg).num_parameters()


def test_gpt2_has_exactly_124439808_parameters():
    assert _count("gpt2") == 124_439_808


def test_bert_base_with_pooler_has_exactly_109482240_parameters():
    assert _count("bert-base") == 109_482_240


def test_gpt2_matches_transformers():
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    assert _count("gpt2") == hf.num_parameters()


def test_bert_matches_transformers():
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        hf = transformers.BertModel(transformers.BertConfig())
    assert _count("bert-base") == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("name", ["smollm2-135m", "llama2-7b", "llama3.2-1b", "llama-tiny"])
def test_llama_presets_match_transformers(name):
    transformers = pytest.importorskip("transformers")
    cfg = preset(name)
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.attn.n_heads,
        num_key_value_heads=cfg.attn.kv_heads, tie_word_embeddings=cfg.head.tie,
        max_position_embeddings=cfg.max_seq_len)
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM(hf_cfg)
    hf_total = sum(p.numel() for p in {id(p): p for p in hf.parameters()}.values())
    assert _count(name) == hf_total
