"""GPT-2's byte-level BPE as a `tokenizers.Tokenizer`, built from a tiktoken rank file.

A tiktoken file lists `base64(token bytes) rank` per line; it holds no merge list. The merges are
recovered the standard way: a token of rank r is what BPE makes of its own bytes using only
the merges ranked below r, and that run must end in exactly two parts — the merge that forms it.
The PyPI package `openai-whisper` ships GPT-2's file as `whisper/assets/gpt2.tiktoken`.
"""
from __future__ import annotations

import base64
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from archlab.interop.hf_io import InteropError

ENDOFTEXT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex (what tiktoken's "gpt2" encoding and HF's ByteLevel(use_regex=True) use)
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def find_gpt2_tiktoken() -> Path | None:
    """The GPT-2 rank file: $ARCHLAB_GPT2_TIKTOKEN, or the one inside an installed openai-whisper; else None."""
    env = os.environ.get("ARCHLAB_GPT2_TIKTOKEN")
    if env:
        return Path(env) if Path(env).is_file() else None
    try:  # find_spec locates the package without importing it (its own dependencies are not installed)
        spec = importlib.util.find_spec("whisper")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "assets" / "gpt2.tiktoken"
        if p.is_file():
            return p
    return None


def read_ranks(path: str | Path) -> dict[bytes, int]:
    """{token bytes: rank} from a tiktoken rank file."""
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"tiktoken rank file {str(p)!r} does not exist")
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(p.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            tok, rank = line.split()
            ranks[base64.b64decode(tok, validate=True)] = int(rank)
        except ValueError:
            raise InteropError(f"{str(p)!r} line {n} is not 'base64-token rank': {line[:60]!r}") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise InteropError(f"{str(p)!r}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (so BPE works on strings without spaces/controls)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _split_at_rank(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """BPE of `token`'s bytes using only merges of rank < max_rank (lowest rank first)."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best, best_rank = None, max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best, best_rank = i, r
        if best is None:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The ordered merge list that reproduces `ranks` under BPE."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = _split_at_rank(ranks, token, rank)
        if len(parts) != 2:
            raise InteropError(f"token {token!r} (rank {rank}) cannot be formed by one merge of lower-ranked tokens")
        merges.append((parts[0], parts[1]))
    return merges


def gpt2_tokenizer(path: str | Path | None = None):
    """GPT-2's tokenizer (50257 ids, <|endoftext|> = 50256) as a `tokenizers.Tokenizer`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    path = path or find_gpt2_tiktoken()
    if path is None:
        raise InteropError("no GPT-2 tiktoken rank file: install it with `pip install --no-deps openai-whisper` "
                           "or point ARCHLAB_GPT2_TIKTOKEN at a gpt2.tiktoken file")
    ranks = read_ranks(path)
    b2u = bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    vocab = {s(tok): rank for tok, rank in ranks.items()}
    merges = [(s(a), s(b)) for a, b in merges_from_ranks(ranks)]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(ENDOFTEXT, special=True, normalized=False)])
    if tk.token_to_id(ENDOFTEXT) != len(ranks):
        raise InteropError(f"{ENDOFTEXT} got id {tk.token_to_id(ENDOFTEXT)}, expected {len(ranks)}")
    return tk
