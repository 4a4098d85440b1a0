"""Synthetic tasks: deterministic, answers only where determined, and trainable through the task interface."""
import pytest
import torch

from archlab.data.synthetic import FIRST, GENERATORS, IGNORE, PAD, SEP, TRIGGER, generate, masked_accuracy

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
    """MQAR through the task interface and the shared trainer: a 2-layer attention model (d 32, 200 steps, ~7 s on
    one CPU thread) answers well above chance. With vocab 32 a value is one of 14 tokens (chance 1/14 ≈ 0.07);
    the model must reach 3× chance and a val loss below a uniform guess over the values (ln 14 ≈ 2.64)."""
    pytest.importorskip("archlab.train")
    import math

    from archlab.train.run_config import run_config_from_dict
    from archlab.train.trainer import train

    cfg = run_config_from_dict({
        "model": {"preset": "mixer-attention-tiny", "d_model": 32, "n_layers": 2},
        "task": {"name": "synthetic", "kind": "mqar", "seq_len": 24, "vocab_size": 32, "n_pairs": 3,
                 "eval_size": 128},
        "train": {"steps": 200, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "eval_every": 0, "plot": False,
                  "log_every": 50, "threads": 1}})
    n_values = 32 - FIRST - (32 - FIRST) // 2  # keys take the lower half of the content tokens, values the rest
    chance = 1 / n_values
    out = train(cfg, tmp_path / "run", progress=False)
    assert out["step"] == 200
    assert out["val_acc"] >= 3 * chance, f"val_acc {out['val_acc']:.3f} vs chance {chance:.3f}"
    assert out["val_loss"] < math.log(n_values)
    from archlab.tasks import build_task

    task = build_task(cfg)
    assert torch.equal(task.train_batch(5)["input_ids"], task.train_batch(5)["input_ids"])
    assert not torch.equal(task.train_batch(5)["input_ids"], task.train_batch(6)["input_ids"])
    assert task.model_overrides() == {"vocab_size": 32, "max_seq_len": 24}


def _sum_answer(b, k, n_values, weights=None):
    """Recompute kth_order's answer by hand: the values right after each TRIGGER, combined."""
    out = []
    for row in b["input_ids"]:
        marked = [int(row[i + 1]) - FIRST for i in range(len(row) - 2) if int(row[i]) == TRIGGER]
        assert len(marked) == k
        w = weights or [1] * k
        out.append(FIRST + sum(a * c for a, c in zip(marked, w)) % n_values)
    return out


def test_kth_order_answer_is_a_k_way_interaction():
    b = generate("kth_order", 64, 24, 32, generator=0, k=3, n_values=8)
    assert b["input_ids"][:, -1].eq(SEP).all() and (b["targets"][:, :-1] == IGNORE).all()
    assert b["targets"][:, -1].tolist() == _sum_answer(b, 3, 8)
    # changing any single marked value changes the answer: no token is irrelevant
    x = b["input_ids"][0].clone()
    first = int((x == TRIGGER).nonzero()[0]) + 1
    x[first] = FIRST + (int(x[first]) - FIRST + 1) % 8
    assert _sum_answer({"input_ids": x[None]}, 3, 8)[0] != int(b["targets"][0, -1])


def test_kth_order_order_sensitive_and_fixed_offsets():
    b = generate("kth_order", 64, 24, 32, generator=1, k=3, n_values=8, order_sensitive=True)
    assert b["targets"][:, -1].tolist() == _sum_answer(b, 3, 8, weights=[1, 2, 3])
    f = generate("kth_order", 32, 20, 32, generator=2, k=2, n_values=8, offsets=(3, 7))
    x = f["input_ids"]
    assert not (x == TRIGGER).any()  # positional pattern: nothing marks the tokens
    want = (x[:, 19 - 3] - FIRST + x[:, 19 - 7] - FIRST) % 8 + FIRST
    assert torch.equal(f["targets"][:, -1], want)
    with pytest.raises(ValueError, match="offsets"):
        generate("kth_order", 4, 20, 32, k=2, offsets=(3, 3))
    with pytest.raises(ValueError, match="too short"):
        generate("kth_order", 4, 6, 32, k=3)


def test_kth_order_task_options_are_typed():
    from archlab.config import ConfigError
    from archlab.tasks import build_task
    from archlab.train.run_config import run_config_from_dict

    base = {"model": {"preset": "gpt-tiny"}, "train": {"steps": 1, "batch_size": 2}}
    cfg = run_config_from_dict({**base, "task": {"name": "synthetic", "kind": "kth_order", "seq_len": 16,
                                                 "vocab_size": 24, "k": 2, "order_sensitive": True}})
    assert build_task(cfg).gen_options == {"k": 2, "order_sensitive": True}
    bad = run_config_from_dict({**base, "task": {"name": "synthetic", "kind": "kth_order", "order_sensitive": "yes"}})
    with pytest.raises(ConfigError, match="order_sensitive"):
        build_task(bad)
    wrong = run_config_from_dict({**base, "task": {"name": "synthetic", "kind": "mqar", "k": 2}})
    with pytest.raises(ConfigError, match="does not apply"):
        build_task(wrong)
