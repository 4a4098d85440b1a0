"""Sequence-to-sequence translation with teacher forcing on the decoder (shifted decoder inputs)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from archlab.errors import ConfigError
from archlab.objectives.common import IGNORE_INDEX, pad_sequences, token_cross_entropy


def encode_source(text: str, src_tok, max_len: int) -> list[int]:
    """Source-side ids as seq2seq_batch builds them: the plain tokens, truncated to max_len."""
    return src_tok.encode(text)[:max_len]


def seq2seq_batch(pairs: Sequence[tuple[str, str]], src_tok, tgt_tok, max_len: int) -> dict[str, torch.Tensor]:
    """Padded tensors for seq2seq_loss from (source, target) text pairs.

    input_ids = source tokens (≤ max_len); decoder_input_ids = BOS + target; labels = target + EOS (so
    position t predicts the token after the t-th decoder input); both truncated to max_len, padding with
    PAD in the inputs and IGNORE_INDEX in the labels. Masks are 1 for real tokens.
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    if not pairs:
        raise ConfigError("seq2seq_batch needs at least one (source, target) pair")
    src, dec_in, lab = [], [], []
    for s, t in pairs:
        src.append(encode_source(s, src_tok, max_len) or [src_tok.eos_id])  # never an empty source
        tgt = tgt_tok.encode(t)
        dec_in.append(([tgt_tok.bos_id] + tgt)[:max_len])
        lab.append((tgt + [tgt_tok.eos_id])[:max_len])
    input_ids = pad_sequences(src, src_tok.pad_id)
    attention_mask = pad_sequences([[1] * len(s) for s in src], 0)
    decoder_input_ids = pad_sequences(dec_in, tgt_tok.pad_id)
    decoder_attention_mask = pad_sequences([[1] * len(d) for d in dec_in], 0)
    labels = pad_sequences(lab, IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_attention_mask, "labels": labels}


def seq2seq_loss(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Target-side cross-entropy of an encoder-decoder; batch as made by seq2seq_batch."""
    logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                   decoder_input_ids=batch["decoder_input_ids"],
                   decoder_attention_mask=batch.get("decoder_attention_mask"))
    return token_cross_entropy(logits, batch["labels"])
