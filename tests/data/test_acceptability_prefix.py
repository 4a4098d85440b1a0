"""Seed 004's acceptability judgement task and the prefix LM's fixed first-half prefix."""
import pytest
import torch

from archlab.config import ConfigError
from archlab.data.acceptability import CORRUPTIONS, acceptability_classification, corrupt
from archlab.tasks import build_task
from archlab.train.run_config import run_config_from_dict


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_each_corruption_keeps_length_and_changes_the_passage(kind):
    words = "to be or not to be that is the question".split()
    for key in range(20):
        out = corrupt(words, kind, key, ["whether", "tis", "nobler"])
        assert len(out) == len(words) and out != words
        if kind != "replace":
            assert sorted(out) == sorted(words)  # order changes only: a bag of words cannot tell
    with pytest.raises(ValueError, match="unknown"):
        corrupt(words, "delete", 0, [])


def test_acceptability_splits_are_balanced_deterministic_and_disjoint():
    val, labels = acceptability_classification("validation")
    assert labels == ["unacceptable", "acceptable"]
    assert 0.45 < sum(y for _, y in val) / len(val) < 0.55
    assert val == acceptability_classification("validation")[0]
    test = acceptability_classification("test")[0]
    assert not {t for t, _ in val} & {t for t, _ in test}


def _cfg(task, model=None):
    return run_config_from_dict({"model": model or {"preset": "bert-tiny", "d_model": 32, "max_seq_len": 32},
                                 "task": task, "train": {"steps": 1, "batch_size": 4, "threads": 1}})


def test_classification_task_reads_the_dataset_option():
    t = build_task(_cfg({"name": "classification", "dataset": "acceptability", "tokenizer": "char",
                         "max_len": 32, "max_eval": 8}))
    assert t.label_names == ["unacceptable", "acceptable"]
    assert t.train_batch(0)["labels"].shape == (4,)
    with pytest.raises(ConfigError, match="task.dataset"):
        build_task(_cfg({"name": "classification", "dataset": "cola", "tokenizer": "char"}))


def test_prefix_lm_half_prefix(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Friends, Romans, countrymen, lend me your ears.\n" * 60, encoding="utf-8")
    model = {"preset": "gpt-tiny", "d_model": 32, "max_seq_len": 16}
    task = {"name": "prefix_lm", "corpus": str(corpus), "tokenizer": "char", "block_size": 16, "prefix": "half"}
    b = build_task(_cfg(task, model)).train_batch(0)
    T = b["input_ids"].shape[1]
    assert torch.equal(b["prefix_len"], torch.full((4,), T // 2))
    # position t predicts token t+1: the continuation (tokens T//2 … T−1) is predicted from positions T//2−1 … T−2
    assert (b["labels"][:, : T // 2 - 1] == -100).all() and (b["labels"][:, T // 2 - 1:-1] != -100).all()
    with pytest.raises(ConfigError, match="task.prefix"):
        build_task(_cfg({**task, "prefix": "first"}, model))
