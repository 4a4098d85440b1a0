"""token_cross_entropy's fast path (no masked copy of the logits when every position is labelled, the label check
left to cross_entropy on CPU) gives exactly the numbers of the plain computation, and the same clear error."""
import pytest
import torch
import torch.nn.functional as F

from archlab.objectives.common import IGNORE_INDEX, token_cross_entropy


def _plain(logits, labels):
    V = logits.shape[-1]
    fl, lb = logits.reshape(-1, V), labels.reshape(-1)
    valid = lb != IGNORE_INDEX
    loss = F.cross_entropy(fl.float(), lb, ignore_index=IGNORE_INDEX)
    acc = (fl[valid].argmax(-1) == lb[valid]).float().mean()
    return loss, {"loss": float(loss), "accuracy": float(acc), "n_tokens": float(valid.sum())}


@pytest.mark.parametrize("ignored", [0.0, 0.3])
def test_fast_path_equals_the_plain_computation(ignored):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 17, 23, generator=g)
    labels = torch.randint(0, 23, (5, 17), generator=g)
    labels[torch.rand(5, 17, generator=g) < ignored] = IGNORE_INDEX
    loss, metrics = token_cross_entropy(logits, labels)
    ref_loss, ref = _plain(logits, labels)
    assert torch.equal(loss, ref_loss) and metrics == ref


@pytest.mark.parametrize("bad", [23, -5])
def test_a_label_out_of_range_is_named(bad):
    labels = torch.zeros(2, 4, dtype=torch.long)
    labels[1, 2] = bad
    with pytest.raises(ValueError, match=f"label id {bad} out of range: expected 0 <= label < 23"):
        token_cross_entropy(torch.randn(2, 4, 23), labels)
