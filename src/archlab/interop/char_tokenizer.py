"""archlab's character tokenizer as a Hugging Face `tokenizers` file that `AutoTokenizer` loads.

The character tokenizer (ids 0-5 special, one id per character, then 256 byte tokens <0x00>..<0xFF>) is a
BPE model without merges: every character is its own token, a character outside the vocabulary falls back
to its UTF-8 bytes (`byte_fallback`), and the ByteFallback + Fuse decoder turns byte tokens back into text
— the ids and the decoded text are exactly archlab's (tested). Special tokens are added as special tokens,
so `AutoTokenizer` skips them when decoding with skip_special_tokens.
"""
from __future__ import annotations

from typing import Any

from archlab.data.tokenizers import SPECIAL_NAMES, SPECIAL_TOKENS, BPETokenizer, CharTokenizer


def char_to_hf(tok: CharTokenizer):
    """A `tokenizers.Tokenizer` that encodes and decodes every string exactly as `tok` does."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    vocab = {tok.itos[i]: i for i in range(tok.byte_offset)}
    if tok.byte_fallback:
        vocab.update({f"<0x{b:02X}>": tok.byte_offset + b for b in range(256)})
    hf = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=tok.byte_fallback, fuse_unk=False))
    hf.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    hf.add_special_tokens([AddedToken(SPECIAL_TOKENS[n], special=True, normalized=False) for n in SPECIAL_NAMES])
    return hf


def hf_tokenizer(tok: Any):
    """The `tokenizers.Tokenizer` to save beside HF weights for an archlab or `tokenizers` tokenizer."""
    if isinstance(tok, CharTokenizer):
        return char_to_hf(tok)
    if isinstance(tok, BPETokenizer):
        return tok.tk
    return tok


def tokenizer_config(tok: Any) -> dict[str, Any]:
    """tokenizer_config.json for the saved tokenizer (special-token roles when archlab knows them)."""
    out: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
    if isinstance(tok, CharTokenizer):
        out.update({f"{n}_token": SPECIAL_TOKENS[n] for n in ("pad", "bos", "eos", "mask", "cls", "sep")})
        out["unk_token"] = None
    return out
