"""Shipped corpora, user text reading and the genre-classification task."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from archlab.data.corpora import (
    SHIPPED_DIR,
    CorpusError,
    bible_pairs,
    load_corpus,
    read_text,
    shakespeare_text,
    shakespeare_work,
    shakespeare_works,
    source_classification,
)


def test_shipped_files_match_manifest():
    manifest = json.loads((SHIPPED_DIR / "MANIFEST.json").read_text())
    total = 0
    for name in ("shakespeare.txt.xz", "shakespeare_index.json", "bible_en_es.tsv.xz"):
        data = (SHIPPED_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest[name]["sha256"], name
        total += len(data)
    assert total < 5_000_000  # small enough for git


def test_shakespeare():
    text = shakespeare_text()
    assert 5_000_000 < len(text) < 5_100_000
    works = shakespeare_works()
    assert len(works) == 42
    assert Counter(w["genre"] for w in works) == {"comedy": 14, "history": 10, "tragedy": 12, "romance": 1,
                                                  "poem": 5}
    assert "To be, or not to be" in shakespeare_work("hamlet")
    assert load_corpus("shakespeare") is text
    with pytest.raises(CorpusError, match="unknown Shakespeare work"):
        shakespeare_work("hamlett")


def test_bible_pairs_splits_fixed_and_disjoint():
    sizes = {s: len(bible_pairs(s)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 29052, "validation": 1042, "test": 990}
    refs = {s: {r for r, _, _ in bible_pairs(s, with_refs=True)} for s in sizes}
    assert not refs["train"] & refs["test"] and not refs["train"] & refs["validation"]
    train = dict((r, (e, s)) for r, e, s in bible_pairs("train", with_refs=True))
    assert train["Gen.1.1"] == ("In the beginning God created the heaven and the earth.",
                                "EN el principio crió Dios los cielos y la tierra.")
    for en, es in bible_pairs("test"):
        assert en and es and "<" not in en + es and "\t" not in en + es
    with pytest.raises(CorpusError, match="split must be one of"):
        bible_pairs("dev")


def test_read_text_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first file\n", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.md").write_text("second — ünïcode\n", encoding="utf-8")
    (sub / "ignored.bin").write_bytes(b"\xff\xfe")
    assert read_text(tmp_path / "a.txt") == "first file\n"
    assert read_text(tmp_path) == "first file\n\n\nsecond — ünïcode\n"
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfhi")
    assert read_text(tmp_path / "bom.txt") == "hi"


def test_read_text_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(CorpusError, match="empty.txt: corpus is empty"):
        read_text(empty)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"line one\ncaf" + b"\xe9 au lait\n")
    with pytest.raises(CorpusError, match=r"latin1.txt: not UTF-8 text: byte 0xe9 at offset 12 \(line 2\)"):
        read_text(bad)
    folder = tmp_path / "nothing"
    folder.mkdir()
    with pytest.raises(CorpusError, match="no text files"):
        read_text(folder)


def test_source_classification():
    train, names = source_classification("train")
    val, _ = source_classification("validation")
    test, _ = source_classification("test")
    assert names == ["comedy", "history", "tragedy"]
    assert 25_000 < len(train) and 3_000 < len(val) and 3_000 < len(test)
    assert not {t for t, _ in train} & {t for t, _ in test}
    counts = Counter(y for _, y in test)
    assert set(counts) == {0, 1, 2} and max(counts.values()) / len(test) < 0.45  # no dominant class
    assert all(len(t) <= 128 for t, _ in train[:1000])
    assert source_classification("test") == (test, names)  # fixed
