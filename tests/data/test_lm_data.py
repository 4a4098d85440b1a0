"""Token caching and deterministic LM batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from archlab.data.lm_data import LMBatches, eval_batches, token_ids_cached, train_val_split
from archlab.data.tokenizers import CharTokenizer

TEXT = "the quick brown fox jumps over the lazy dog. " * 50


def test_token_cache_memmap_and_keying(tmp_path):
    tok = CharTokenizer.from_text(TEXT)
    ids = token_ids_cached(TEXT, tok, tmp_path)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    assert ids.tolist() == tok.encode(TEXT)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    again = token_ids_cached(TEXT, tok, tmp_path)
    assert np.array_equal(again, ids) and len(list(tmp_path.glob("*.npy"))) == 1
    token_ids_cached(TEXT + "!", CharTokenizer.from_text(TEXT + "!"), tmp_path)  # new text+tokenizer -> new key
    token_ids_cached(TEXT, CharTokenizer.from_text(TEXT + "Z"), tmp_path)  # same text, other tokenizer
    assert len(list(tmp_path.glob("*.npy"))) == 3
    files[0].write_bytes(b"corrupt")  # a torn cache file is rebuilt, not trusted
    assert token_ids_cached(TEXT, tok, tmp_path).tolist() == tok.encode(TEXT)
    assert not list(tmp_path.glob(".*tmp"))


def test_batches_are_pure_function_of_seed_and_step():
    ids = np.arange(1000, dtype=np.uint16)
    a, b = LMBatches(ids, 16, 4, seed=7), LMBatches(ids, 16, 4, seed=7)
    for step in (0, 1, 5, 1234):
        x, y = a.get(step), b.get(step)
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"])
    assert x["input_ids"].dtype == torch.int64 and x["input_ids"].shape == (4, 16)
    # labels are the next tokens
    assert torch.equal(x["labels"], x["input_ids"] + 1)
    assert not torch.equal(a.get(0)["input_ids"], a.get(1)["input_ids"])
    assert not torch.equal(a.get(0)["input_ids"], LMBatches(ids, 16, 4, seed=8).get(0)["input_ids"])
    # iteration order equals get(step): resuming at step k gives the same stream
    it = iter(a)
    assert torch.equal(next(it)["input_ids"], a.get(0)["input_ids"])
    # every window stays inside the array, including the last token
    offs = np.concatenate([a.offsets(s) for s in range(300)])
    assert offs.min() >= 0 and offs.max() <= len(ids) - 17


def test_eval_batches_and_split():
    ids = np.arange(10_000, dtype=np.uint16)
    train, val = train_val_split(ids, 0.1)
    assert len(train) == 9000 and len(val) == 1000 and val[0] == 9000
    ev = eval_batches(val, 32, 8, 3)
    assert len(ev) == 3 and all(b["input_ids"].shape == (8, 32) for b in ev)
    assert torch.equal(ev[0]["input_ids"], LMBatches(val, 32, 8, seed=99).eval_batches(3)[0]["input_ids"])
    starts = torch.cat([b["input_ids"][:, 0] for b in ev])
    assert int(starts.min()) == 9000 and int(starts.max()) == 9999 - 32  # spans the whole held-out range


def test_bad_lm_data_arguments():
    with pytest.raises(ValueError, match="needs at least 65"):
        LMBatches(np.arange(10), 64, 2, 0)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(np.arange(100), 1.5)
    with pytest.raises(ValueError, match="empty"):
        token_ids_cached("", CharTokenizer("a"))
