"""Shared pieces of the objectives: masked cross-entropy with token accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean CE over positions whose label is not IGNORE_INDEX; logits (..., V), labels (...).

    Returns (loss, {"loss", "accuracy", "n_tokens"}); n_tokens counts the labelled positions (the weight
    of this batch in a token-weighted mean, the convention of archlab.tasks.Task.evaluate). With no
    labelled position the loss is an exact 0 that still depends on the logits
    (so backward() works and the step is a no-op).
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    V = logits.shape[-1]
    flat_logits, flat_labels = logits.reshape(-1, V), labels.reshape(-1)
    valid = flat_labels != IGNORE_INDEX
    n = int(valid.sum())
    if n == 0:
        loss = flat_logits.sum() * 0.0
        return loss, {"loss": 0.0, "accuracy": 0.0, "n_tokens": 0.0}
    if flat_labels.device.type != "cpu":  # on CPU cross_entropy itself refuses such a label (caught below)
        _check_labels(flat_labels, valid, V)
    try:
        loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX)
    except IndexError:
        _check_labels(flat_labels, valid, V)
        raise
    with torch.no_grad():
        if n == flat_labels.numel():  # every position labelled (causal LM windows): no masked copy of the logits
            acc = (flat_logits.argmax(-1) == flat_labels).float().mean()
        else:
            acc = (flat_logits[valid].argmax(-1) == flat_labels[valid]).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(acc), "n_tokens": float(n)}


def _check_labels(flat_labels: torch.Tensor, valid: torch.Tensor, V: int) -> None:
    """A clear ValueError for a label outside [0, V) that is not IGNORE_INDEX."""
    bad = valid & ((flat_labels < 0) | (flat_labels >= V))
    if bool(bad.any()):
        raise ValueError(f"label id {int(flat_labels[bad][0])} out of range: expected 0 <= label < {V} "
                         f"or {IGNORE_INDEX} (ignored)")


def pad_sequences(seqs: list[list[int]], pad_value: int, length: int | None = None) -> torch.Tensor:
    """Right-pad lists of ids into a (B, L) int64 tensor."""
    L = length if length is not None else max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), max(L, 1)), pad_value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, : len(s)] = torch.tensor(s[:L], dtype=torch.long)
    return out
