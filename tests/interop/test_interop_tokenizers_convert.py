"""Tokenizers travel with the weights; GPT-2's BPE rebuilt from tiktoken ranks; `archlab convert` round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from archlab.cli import main
from archlab.interop import from_hf, load_pretrained, to_hf
from archlab.interop.tiktoken_bpe import GPT2_PATTERN, find_gpt2_tiktoken, gpt2_tokenizer, merges_from_ranks
from archlab.models import build_model, preset

SAMPLES = [
    "Hello world! It's 2026, isn't it?  Spaces   and\ttabs\n\nnewlines  ",
    "naïve café — 東京 🙂 emoji, ÅÄÖ, ﬁ ligature",
    "I'll've we'd they're you've   x=3.14159e-10; print(f'{x!r}')",
    "<|endoftext|> is a special token",
]


def _word_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "[PAD]"] + [f"w{i}" for i in range(vocab_size - 2)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return tk


def test_merges_recovered_from_ranks():
    # a toy rank table: bytes, then "ab" (rank 256), then "abc" = "ab" + "c"
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"ab"], ranks[b"abc"], ranks[b"bc"] = 256, 257, 258
    assert merges_from_ranks(ranks) == [(b"a", b"b"), (b"ab", b"c"), (b"b", b"c")]


def test_gpt2_bpe_from_tiktoken_matches_tiktoken():
    path = find_gpt2_tiktoken()
    if path is None:
        pytest.skip("no gpt2.tiktoken (pip install --no-deps openai-whisper)")
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    tk = gpt2_tokenizer(path)
    enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(path)),
                            special_tokens={"<|endoftext|>": 50256})
    assert tk.get_vocab_size() == 50257 and tk.token_to_id("<|endoftext|>") == 50256
    src = Path(__file__).resolve().parents[2] / "src" / "archlab"
    texts = SAMPLES + [p.read_text(encoding="utf-8") for p in sorted(src.glob("*.py"))[:4]]
    for text in texts:
        assert tk.encode(text).ids == enc.encode(text, allowed_special="all"), text[:80]
    assert tk.decode(tk.encode(SAMPLES[1]).ids) == SAMPLES[1]


def test_tokenizer_json_travels_with_weights(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = build_model(preset("gpt-tiny"))
    tk = _word_tokenizer(model.cfg.vocab_size)
    to_hf(model, tmp_path / "hf", tokenizer=tk)
    loaded, tok = load_pretrained(tmp_path / "hf")
    assert tok is not None and tok.encode("w3 w7 nope").ids == [5, 9, 0]
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert hf_tok("w3 w7 nope", add_special_tokens=False).input_ids == [5, 9, 0]
    # archlab checkpoint keeps it too
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--to", str(tmp_path / "al")]) == 0
    _, tok2 = load_pretrained(tmp_path / "al")
    assert tok2 is not None and tok2.encode("w3 w7").ids == [5, 9]


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny", "bert-tiny", "mamba-tiny"])
def test_convert_round_trip_is_lossless(tmp_path, name, capsys):
    torch.manual_seed(0)
    model = build_model(preset(name)).eval()
    to_hf(model, tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--to", str(tmp_path / "al")]) == 0
    assert main(["convert", "--from", str(tmp_path / "al"), "--to-hf", str(tmp_path / "hf2")]) == 0
    a, b = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "hf2" / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    back, _ = load_pretrained(tmp_path / "al")
    x = torch.randint(0, model.cfg.vocab_size, (2, 9))
    with torch.no_grad():
        assert torch.equal(back(x), model(x)) if model.cfg.head.lm else torch.equal(back.encode(x), model.encode(x))
    assert torch.equal(from_hf(tmp_path / "hf2").state_dict()["tok_embed.weight"], model.tok_embed.weight)


def test_convert_check_against_transformers(tmp_path, capsys):
    pytest.importorskip("transformers")
    assert main(["convert", "--from", "llama-tiny", "--to-hf", str(tmp_path / "hf"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "max |logit difference|" in out
    diff = float(out.rsplit("= ", 1)[1].split()[0])
    assert diff <= 1e-4
