"""Prefix language modelling (UniLM / T5 "prefix LM"): bidirectional attention over a prefix, causal
after it, loss only on the continuation."""
from __future__ import annotations

import torch

from archlab.errors import ConfigError
from archlab.objectives.common import IGNORE_INDEX, token_cross_entropy


def _prefix_lengths(prefix_len, batch: int, device) -> torch.Tensor:
    if isinstance(prefix_len, int):
        return torch.full((batch,), prefix_len, dtype=torch.long, device=device)
    return torch.as_tensor(prefix_len, dtype=torch.long, device=device).reshape(batch)


def prefix_lm_mask(prefix_len, T: int, attention_mask: torch.Tensor | None = None,
                   batch: int | None = None) -> torch.Tensor:
    """Boolean (B, T, T) mask, True = query i may attend key j: j < prefix_len (the whole prefix) or j <= i.

    Padding keys (attention_mask == 0) are closed as well.
    """
    B = batch if batch is not None else (attention_mask.shape[0] if attention_mask is not None else
                                         len(torch.as_tensor(prefix_len).reshape(-1)))
    device = attention_mask.device if attention_mask is not None else None
    P = _prefix_lengths(prefix_len, B, device)
    j = torch.arange(T, device=device)
    causal = j[None, :] <= j[:, None]  # (T, T)
    in_prefix = j[None, None, :] < P[:, None, None]  # (B, 1, T)
    mask = causal[None] | in_prefix
    if attention_mask is not None:
        mask = mask & attention_mask.bool()[:, None, :]
    return mask


def prefix_lm_labels(input_ids: torch.Tensor, prefix_len, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """labels[:, t] = input_ids[:, t + 1] where token t + 1 is in the continuation, else IGNORE_INDEX."""
    B, T = input_ids.shape
    P = _prefix_lengths(prefix_len, B, input_ids.device)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    target_pos = torch.arange(1, T + 1, device=input_ids.device)[None, :]  # position of the predicted token
    keep = target_pos >= P[:, None]
    if attention_mask is not None:
        nxt = torch.zeros_like(attention_mask, dtype=torch.bool)
        nxt[:, :-1] = attention_mask[:, 1:].bool()
        keep &= nxt
    return labels.masked_fill(~keep, IGNORE_INDEX)


def prefix_lm_batch(input_ids: torch.Tensor, prefix_len, attention_mask: torch.Tensor | None = None) -> dict:
    """A prefix-LM batch: input_ids, prefix_len (B,), labels (continuation only), optional attention_mask."""
    B = input_ids.shape[0]
    batch = {"input_ids": input_ids, "prefix_len": _prefix_lengths(prefix_len, B, input_ids.device),
             "labels": prefix_lm_labels(input_ids, prefix_len, attention_mask)}
    if attention_mask is not None:
        batch["attention_mask"] = attention_mask
    return batch


def random_prefix_lm_batch(input_ids: torch.Tensor, generator: torch.Generator | None = None,
                           min_prefix: int = 1) -> dict:
    """prefix_lm_batch with a prefix length drawn uniformly from [min_prefix, T - 1] for each row."""
    B, T = input_ids.shape
    if not 1 <= min_prefix <= T - 1:
        raise ConfigError(f"min_prefix must be in [1, T-1={T - 1}], got {min_prefix}")
    P = torch.randint(min_prefix, T, (B,), generator=generator)
    return prefix_lm_batch(input_ids, P.to(input_ids.device))


def prefix_lm_loss(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token loss on the continuation; the prefix is read bidirectionally.

    batch: input_ids (B, T), prefix_len (int or (B,)), optional attention_mask (B, T) and labels.
    The model must apply the mask it is given as is: a decoder built with `attn.causal=false` (the
    objective supplies the causal part), or an encoder. A causal decoder would AND its own causal
    mask with ours and silently train a plain causal LM, so it is refused.
    """
    decoder = getattr(model, "decoder", None)
    if decoder is not None and getattr(decoder, "causal", False):
        raise ConfigError("prefix_lm_loss needs a model built with attn.causal=false (the prefix-LM mask is "
                          "causal after the prefix already); this model's decoder is causal")
    input_ids = batch["input_ids"]
    B, T = input_ids.shape
    pad_mask = batch.get("attention_mask")
    prefix_len = batch["prefix_len"]
    labels = batch.get("labels")
    if labels is None:
        labels = prefix_lm_labels(input_ids, prefix_len, pad_mask)
    mask = prefix_lm_mask(prefix_len, T, pad_mask, batch=B).to(input_ids.device)
    logits = model(input_ids, attention_mask=mask)
    return token_cross_entropy(logits, labels)
