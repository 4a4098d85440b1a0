"""Training objectives of seed 004: causal LM, masked LM, prefix LM, seq2seq translation, classification.

Every loss is `loss_fn(model, batch) -> (loss tensor, {"loss": float, "accuracy": float, ...})`.
"""
from __future__ import annotations

from archlab.objectives.causal_lm import causal_lm_loss, shift_labels  # noqa: F401
from archlab.objectives.classification import classification_batch, classification_loss  # noqa: F401
from archlab.objectives.common import IGNORE_INDEX, pad_sequences, token_cross_entropy  # noqa: F401
from archlab.objectives.mlm import mask_tokens, mlm_batch, mlm_loss  # noqa: F401
from archlab.objectives.prefix_lm import (  # noqa: F401
    prefix_lm_batch,
    prefix_lm_labels,
    prefix_lm_loss,
    prefix_lm_mask,
    random_prefix_lm_batch,
)
from archlab.objectives.seq2seq import encode_source, seq2seq_batch, seq2seq_loss  # noqa: F401
