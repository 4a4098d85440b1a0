"""Sequence classification: fine-tune an encoder's pooled [CLS] output with a linear classifier."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from archlab.errors import ConfigError
from archlab.objectives.common import pad_sequences


def classification_batch(examples: Sequence[tuple[str, int]], tokenizer, max_len: int) -> dict[str, torch.Tensor]:
    """input_ids = CLS + tokens + SEP (truncated to max_len), right-padded; attention_mask; labels (B,)."""
    if max_len < 3:
        raise ConfigError(f"max_len must be >= 3 (CLS, a token, SEP), got {max_len}")
    if not examples:
        raise ConfigError("classification_batch needs at least one (text, label) example")
    seqs = [[tokenizer.cls_id, *tokenizer.encode(text)[: max_len - 2], tokenizer.sep_id] for text, _ in examples]
    return {"input_ids": pad_sequences(seqs, tokenizer.pad_id),
            "attention_mask": pad_sequences([[1] * len(s) for s in seqs], 0),
            "labels": torch.tensor([int(y) for _, y in examples], dtype=torch.long)}


def classification_loss(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of model.classify(input_ids, attention_mask[, token_type_ids]) against labels (B,)."""
    logits = model.classify(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
    labels = batch["labels"].long()
    n_classes = logits.shape[-1]
    if bool(((labels < 0) | (labels >= n_classes)).any()):
        bad = int(labels[(labels < 0) | (labels >= n_classes)][0])
        raise ConfigError(f"class label {bad} out of range: the model has head.n_classes={n_classes}")
    loss = F.cross_entropy(logits.float(), labels)
    acc = (logits.detach().argmax(-1) == labels).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(acc)}
