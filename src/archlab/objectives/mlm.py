"""Masked language modelling (BERT): hide 15% of tokens, predict them from both sides."""
from __future__ import annotations

import torch

from archlab.errors import ConfigError
from archlab.objectives.common import IGNORE_INDEX, token_cross_entropy


def _special_ids(tokenizer) -> list[int]:
    ids = getattr(tokenizer, "all_special_ids", None)
    if ids is None:
        ids = {getattr(tokenizer, f"{n}_id") for n in ("pad", "bos", "eos", "mask", "cls", "sep")}
    return sorted(int(i) for i in ids)


def mask_tokens(ids: torch.Tensor, tokenizer, generator: torch.Generator | None = None, p: float = 0.15,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (Devlin et al. 2019 §3.1): returns (masked input_ids, labels).

    Each non-special, non-padding token is selected with probability p; a selected token becomes
    [MASK] 80% of the time, a random non-special token 10%, and stays unchanged 10% (so the model
    cannot assume the visible token is always right). labels hold the original id at selected
    positions and IGNORE_INDEX (-100) elsewhere. Deterministic given `generator`.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"mask probability p must be in [0, 1], got {p}")
    ids = ids.long()
    special = torch.tensor(_special_ids(tokenizer), dtype=torch.long, device=ids.device)
    candidate = ~torch.isin(ids, special)
    if attention_mask is not None:
        candidate &= attention_mask.bool()
    dev = ids.device
    u_select = torch.rand(ids.shape, generator=generator, device=dev)
    u_kind = torch.rand(ids.shape, generator=generator, device=dev)
    selected = candidate & (u_select < p)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    V = int(tokenizer.vocab_size)
    regular = torch.ones(V, dtype=torch.bool, device=dev)
    regular[special[special < V]] = False
    pool = regular.nonzero().squeeze(1)
    random_tok = pool[torch.randint(len(pool), ids.shape, generator=generator, device=dev)]
    out = ids.clone()
    out = torch.where(selected & (u_kind < 0.8), torch.full_like(ids, int(tokenizer.mask_id)), out)
    out = torch.where(selected & (u_kind >= 0.8) & (u_kind < 0.9), random_tok, out)
    return out, labels


def mlm_batch(input_ids: torch.Tensor, tokenizer, generator: torch.Generator | None = None, p: float = 0.15,
              attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A batch for mlm_loss from unmasked ids (e.g. an LMBatches window): masked input_ids and labels."""
    masked, labels = mask_tokens(input_ids, tokenizer, generator, p, attention_mask)
    batch = {"input_ids": masked, "labels": labels}
    if attention_mask is not None:
        batch["attention_mask"] = attention_mask
    return batch


def mlm_loss(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the masked positions only. batch: input_ids (masked), labels, optional
    attention_mask and token_type_ids. The model must attend bidirectionally (an encoder)."""
    kwargs = {k: batch[k] for k in ("attention_mask", "token_type_ids") if batch.get(k) is not None}
    logits = model(batch["input_ids"], **kwargs)
    return token_cross_entropy(logits, batch["labels"])
