"""Tokenizers: exact round-trips (property tests), special tokens, save/load, bad input."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archlab.data.tokenizers import SPECIAL_NAMES, BPETokenizer, CharTokenizer, TokenizerError, load_tokenizer

SAMPLE = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
          "En el principio crió Dios los cielos y la tierra. ¿Qué? ¡Sí! año, corazón.\n") * 20


@pytest.fixture(scope="module")
def char_tok() -> CharTokenizer:
    return CharTokenizer.from_text(SAMPLE)


@pytest.fixture(scope="module")
def bpe_tok() -> BPETokenizer:
    return BPETokenizer.train([SAMPLE], vocab_size=400)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_char_roundtrip_any_text(char_tok, s):
    assert char_tok.decode(char_tok.encode(s)) == s


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_bpe_roundtrip_any_text(bpe_tok, s):
    assert bpe_tok.decode(bpe_tok.encode(s)) == s


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_special_tokens_consistent(kind, char_tok, bpe_tok):
    tok = char_tok if kind == "char" else bpe_tok
    ids = [tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id, tok.cls_id, tok.sep_id]
    assert ids == list(range(6))  # same layout in both tokenizers
    assert all(isinstance(i, int) for i in ids)
    assert set(tok.special_ids) == set(SPECIAL_NAMES)
    enc = tok.encode("to be", add_special=True)
    assert enc[0] == tok.bos_id and enc[-1] == tok.eos_id
    assert tok.decode(enc) == "to be"
    assert "<bos>" in tok.decode(enc, skip_special=False)
    # the literal text of a special token is ordinary text, never a special id
    literal = tok.encode("<mask><bos>")
    assert not set(literal) & tok.all_special_ids
    assert tok.decode(literal) == "<mask><bos>"


def test_char_vocab_and_byte_fallback(char_tok):
    assert char_tok.vocab_size == 6 + len(set(SAMPLE)) + 256
    unseen = "Ω😀"
    ids = char_tok.encode(unseen)
    assert len(ids) == len(unseen.encode("utf-8"))  # one byte token per UTF-8 byte
    assert char_tok.decode(ids) == unseen
    strict = CharTokenizer("ab", byte_fallback=False)
    assert strict.vocab_size == 8
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        strict.encode("abc")


def test_decode_out_of_range_id(char_tok, bpe_tok):
    for tok in (char_tok, bpe_tok):
        with pytest.raises(TokenizerError, match="out of range"):
            tok.decode([tok.vocab_size])
        with pytest.raises(TokenizerError, match="out of range"):
            tok.decode([-1])


def test_save_load_roundtrip(tmp_path, char_tok, bpe_tok):
    p = char_tok.save(tmp_path / "char.json")
    c2 = load_tokenizer(p)
    assert isinstance(c2, CharTokenizer) and c2.fingerprint() == char_tok.fingerprint()
    assert c2.encode(SAMPLE[:200]) == char_tok.encode(SAMPLE[:200])
    d = tmp_path / "bpe"
    d.mkdir()
    p = bpe_tok.save(d)  # a folder gets tokenizer.json
    assert p.name == "tokenizer.json"
    data = json.loads(p.read_text())
    assert data["model"]["type"] == "BPE"  # a genuine Hugging Face tokenizer.json
    b2 = load_tokenizer(d)
    assert isinstance(b2, BPETokenizer) and b2.special_ids == bpe_tok.special_ids
    assert b2.encode(SAMPLE) == bpe_tok.encode(SAMPLE)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic save leaves no temp files


def test_bpe_merges_and_hf_loading(tmp_path, bpe_tok):
    assert len(bpe_tok.encode(SAMPLE)) < len(SAMPLE.encode("utf-8")) / 2  # BPE actually compresses
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(bpe_tok.save(tmp_path / "t.json")))
    assert hf.decode(hf.encode("to be or not").ids) == "to be or not"


def test_load_foreign_tokenizer_maps_aliases(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path)
    assert (tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 2, 3, 4)
    assert tok.bos_id == 2 and tok.eos_id == 3  # BERT-style: CLS/SEP double as BOS/EOS
    assert tok.encode("hello world") == [5, 6]


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerError, match="bad.json"):
        load_tokenizer(bad)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(TokenizerError, match="unrecognised tokenizer format"):
        load_tokenizer(other)
    with pytest.raises(TokenizerError, match="too small"):
        BPETokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer.from_text("")
