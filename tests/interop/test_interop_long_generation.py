"""Generating past max_position_embeddings (issue 18, defect 4): RoPE positions keep extending as in
transformers — logits and greedy tokens equal — while a learned position table refuses at the limit."""
from __future__ import annotations

import pytest
import torch
from _interop_util import max_diff, scramble

transformers = pytest.importorskip("transformers")

from archlab.generate import generate  # noqa: E402
from archlab.interop import from_hf  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

T = transformers
V = 101
LLAMA3 = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8, "rope_theta": 10000.0}


@pytest.mark.parametrize("rope", [None, LLAMA3], ids=["default", "llama3"])
def test_llama_past_max_position_embeddings_matches_transformers(tmp_path, rope):
    kw = {"rope_parameters": rope} if rope else {}
    cfg = T.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                        bos_token_id=None, eos_token_id=None, **kw)
    torch.manual_seed(0)
    hf_model = scramble(T.LlamaForCausalLM(cfg))
    hf_model.save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    ids = torch.randint(0, V, (2, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert max_diff(model(ids), hf_model(ids).logits) <= 1e-4  # forward: 48 positions, limit 16
    prompt = ids[:, :5]
    want = hf_greedy(hf_model, prompt, 40)
    assert torch.equal(greedy(model, prompt, 40), want)
    assert torch.equal(generate(model, prompt, 40, temperature=0)[:, 5:], want)
    assert len(set(want[:, 16:].flatten().tolist())) > 2, "degenerate test: past the limit one token repeats"


def test_gpt2_learned_positions_refuse_past_the_limit(tmp_path):
    cfg = T.GPT2Config(vocab_size=V, n_embd=48, n_layer=2, n_head=4, n_positions=16, bos_token_id=None,
                       eos_token_id=None)
    torch.manual_seed(0)
    scramble(T.GPT2LMHeadModel(cfg)).save_pretrained(tmp_path / "hf")
    model = from_hf(tmp_path / "hf")
    prompt = torch.randint(0, V, (1, 5))
    # 12 new tokens read positions 0..15 (the last one is never fed back): as far as transformers can go
    want = hf_greedy(T.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval(), prompt, 12)
    assert torch.equal(generate(model, prompt, 12, temperature=0)[:, 5:], want)
    assert torch.equal(greedy(model, prompt, 12), want)
    with pytest.raises(ValueError, match="needs 17 positions, beyond max_seq_len=16"):
        generate(model, prompt, 13, temperature=0)
    with pytest.raises(ValueError, match="reaches position 17, beyond the model's max_seq_len=16"):
        greedy(model, prompt, 13)
