"""Acceptability judgements (seed 004: "judging linguistic and pragmatic acceptability of the language").

Passages of the shipped Shakespeare (the genre task's passages and splits) are kept as written (label 1,
"acceptable") or corrupted (label 0) by one of three word-order or word-choice edits that keep the
passage's length and most of its words, so that a bag of words cannot tell them apart:

* swap   — two adjacent, different words exchange places;
* shuffle — a span of 4 consecutive words is reversed;
* replace — one word is replaced by a word drawn from elsewhere in the corpus.

Which passages are corrupted, and how, is fixed by a hash of the passage's position (balanced 50/50), so
the data never changes between runs or machines.
"""
from __future__ import annotations

import hashlib

from archlab.data.corpora import _check_split, _genre_passages

LABELS = ("unacceptable", "acceptable")
CORRUPTIONS = ("swap", "shuffle", "replace")


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def corrupt(words: list[str], kind: str, key: int, vocabulary: list[str]) -> list[str]:
    """One corrupted copy of `words`; raises ValueError if the passage is too short for `kind`."""
    out = list(words)
    if kind == "swap":
        spots = [i for i in range(len(out) - 1) if out[i].lower() != out[i + 1].lower()]
        if not spots:
            raise ValueError("no two adjacent different words to swap")
        i = spots[key % len(spots)]
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "shuffle":
        spans = [i for i in range(len(out) - 3) if out[i:i + 4] != out[i:i + 4][::-1]]
        if not spans:
            raise ValueError("no 4-word span whose reversal differs")
        i = spans[key % len(spans)]
        out[i:i + 4] = out[i:i + 4][::-1]
    elif kind == "replace":
        i = key % len(out)
        choices = [w for w in vocabulary if w.lower() != out[i].lower()]
        out[i] = choices[(key // 7) % len(choices)]
    else:
        raise ValueError(f"corruption {kind!r} unknown (expected one of {list(CORRUPTIONS)})")
    return out


def acceptability_classification(split: str = "train", passage_chars: int = 128, block: int = 16,
                                 ) -> tuple[list[tuple[str, int]], list[str]]:
    """([(passage, label)], LABELS) for one split: label 1 = as written, 0 = corrupted (see the module doc)."""
    _check_split(split)
    passages = _genre_passages(passage_chars, block)
    vocabulary = sorted({w for text, _, s in passages[:2000] if s == "train" for w in text.split(" ")})
    items = []
    for index, (text, _, s) in enumerate(passages):
        if s != split:
            continue
        key = _hash("acceptability", index)
        words = text.split(" ")
        if key % 2 == 1 or len(words) < 5:
            items.append((text, 1))
            continue
        kind = CORRUPTIONS[(key // 2) % len(CORRUPTIONS)]
        try:
            items.append((" ".join(corrupt(words, kind, key // 6, vocabulary)), 0))
        except ValueError:
            items.append((text, 1))
    return items, list(LABELS)
