"""Causal language modelling with teacher forcing: predict token t+1 from the true tokens 0..t."""
from __future__ import annotations

import torch

from archlab.objectives.common import IGNORE_INDEX, token_cross_entropy


def shift_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """labels[:, t] = input_ids[:, t + 1]; the last position and padding get IGNORE_INDEX."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    if attention_mask is not None:
        nxt = torch.zeros_like(attention_mask, dtype=torch.bool)
        nxt[:, :-1] = attention_mask[:, 1:].bool()
        labels = labels.masked_fill(~nxt, IGNORE_INDEX)
    return labels


def causal_lm_loss(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token cross-entropy. batch: input_ids (B, T), optional attention_mask (B, T) and labels (B, T).

    `labels` are already aligned (labels[:, t] is the target after input_ids[:, t], as LMBatches makes
    them); without labels they are input_ids shifted left by one. The model sees the true previous
    tokens at every position (teacher forcing) and the causal mask keeps it from reading the target.
    """
    input_ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    labels = batch.get("labels")
    if labels is None:
        labels = shift_labels(input_ids, mask)
    logits = model(input_ids, attention_mask=mask) if mask is not None else model(input_ids)
    return token_cross_entropy(logits, labels)
