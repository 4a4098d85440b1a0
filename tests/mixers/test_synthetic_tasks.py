"""Synthetic tasks: deterministic, answers only where determined, and trainable through the task interface."""
import pytest
import torch

from archlab.data.synthetic import FIRST, GENERATORS, IGNORE, PAD, generate, masked_accuracy

OPTS = {"mqar": {"n_pairs": 6}, "selective_copy": {"n_tokens": 5}, "associative_recall": {"n_pairs": 5}}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_and_shaped(name):
    a = generate(name, 4, 40, 64, generator=7, **OPTS.get(name, {}))
    b = generate(name, 4, 40, 64, generator=7, **OPTS.get(name, {}))
    c = generate(name, 4, 40, 64, generator=8, **OPTS.get(name, {}))
    assert a["input_ids"].shape == a["targets"].shape == (4, 40)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["targets"], b["targets"])
    assert not torch.equal(a["input_ids"], c["input_ids"])
    assert (a["targets"] != IGNORE).any() and a["input_ids"].max() < 64


def test_mqar_answers_are_the_paired_values():
    b = generate("mqar", 8, 48, 128, generator=0, n_pairs=6)
    for x, y in zip(b["input_ids"], b["targets"], strict=True):
        pairs = dict(zip(x[0:12:2].tolist(), x[1:12:2].tolist(), strict=True))
        where = (y != IGNORE).nonzero().flatten()
        assert len(where) == 6 and all(y[t].item() == pairs[x[t].item()] for t in where)
        assert (x[12:][y[12:] == IGNORE] == PAD).all()  # everything but the queries is blank


def test_selective_copy_and_copy_answers():
    b = generate("selective_copy", 4, 30, 32, generator=1, n_tokens=4)
    for x, y in zip(b["input_ids"], b["targets"], strict=True):
        data = x[:26][x[:26] != PAD]
        assert torch.equal(y[y != IGNORE], data)
    b = generate("copy", 2, 21, 32, generator=1)
    x, y = b["input_ids"][0], b["targets"][0]
    assert torch.equal(y[y != IGNORE], x[1:11])


def test_program_log_and_induction_answers_depend_on_far_tokens():
    b = generate("program_log", 16, 50, 64, generator=2)
    subj, ans = b["input_ids"][:, 2], b["targets"][:, -1]
    assert (b["targets"][:, :-1] == IGNORE).all()
    for s, a in zip(subj.tolist(), ans.tolist(), strict=True):  # a fixed function of the subject, 47 tokens back
        assert a == ans[subj == s][0]
    b = generate("induction_heads", 8, 30, 32, generator=3)
    for x, y in zip(b["input_ids"], b["targets"], strict=True):
        p = (x[:-1] == 2).nonzero().item()
        assert y[-1] == x[p + 1] and x[-1] == 2 and (x[FIRST - 4:] != 3).all()


def test_masked_accuracy():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = logits[0, 1, 4] = 1
    assert masked_accuracy(logits, torch.tensor([[2, 3, IGNORE]])) == 0.5


def test_task_trains_through_the_shared_trainer(tmp_path):
    pytest.importorskip("archlab.train")
    from archlab.train.run_config import run_config_from_dict
    from archlab.train.trainer import train

    cfg = run_config_from_dict({
        "model": {"preset": "mixer-mamba-tiny", "d_model": 32, "n_layers": 1},
        "task": {"name": "synthetic", "kind": "mqar", "seq_len": 24, "vocab_size": 32, "n_pairs": 3,
                 "eval_size": 16},
        "train": {"steps": 2, "batch_size": 4, "eval_every": 0, "plot": False, "log_every": 1}})
    out = train(cfg, tmp_path / "run", progress=False)
    assert out["step"] == 2 and 0 <= out["val_acc"] <= 1
    from archlab.tasks import build_task

    task = build_task(cfg)
    assert torch.equal(task.train_batch(5)["input_ids"], task.train_batch(5)["input_ids"])
    assert task.model_overrides() == {"vocab_size": 32, "max_seq_len": 24}
