"""T5 span corruption: spans, sentinels, the inverse, and the pretraining task through the trainer."""
import pytest
import torch

from archlab.config import ConfigError
from archlab.objectives.span_corruption import corrupt_spans, noise_spans, span_corruption_batch
from archlab.tasks import build_task
from archlab.train.run_config import run_config_from_dict
from archlab.train.trainer import train

S = 1000  # first sentinel id in these tests


def uncorrupt(source, target):
    """The inverse of corrupt_spans: put every span back in place of its sentinel."""
    spans, cur = {}, None
    for t in target:
        if t >= S:
            cur = t
            spans[cur] = []
        else:
            spans[cur].append(t)
    return [x for t in source for x in (spans[t] if t >= S else [t])]


@pytest.mark.parametrize("length", [2, 5, 17, 64, 200])
def test_spans_are_ordered_disjoint_and_about_the_density(length):
    g = torch.Generator().manual_seed(length)
    spans = noise_spans(length, 0.15, 3.0, g)
    assert spans[0][0] >= 1 and spans[-1][1] <= length  # a non-noise part comes first
    assert all(a < b for a, b in spans) and all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    n_noise = sum(b - a for a, b in spans)
    assert n_noise == min(max(1, round(0.15 * length)), length - 1)
    assert len(spans) == max(1, min(round(n_noise / 3), n_noise, length - n_noise))


def test_corruption_round_trips_and_uses_one_sentinel_per_span():
    g = torch.Generator().manual_seed(0)
    ids = list(range(10, 74))
    spans = noise_spans(len(ids), 0.15, 3.0, g)
    src, tgt = corrupt_spans(ids, spans, S)
    assert [t for t in src if t >= S] == list(range(S, S + len(spans)))
    assert [t for t in tgt if t >= S] == list(range(S, S + len(spans) + 1))  # + the closing sentinel
    assert uncorrupt(src, tgt) == ids
    assert corrupt_spans([1, 2, 3, 4], [(1, 3)], S) == ([1, S, 4], [S, 2, 3, S + 1])


def test_batch_layout_and_errors():
    w = torch.arange(10, 42).reshape(2, 16)
    b = span_corruption_batch(w, torch.Generator().manual_seed(1), first_sentinel=S, extra_ids=10, bos_id=1,
                              eos_id=2, pad_id=0)
    for i in range(2):
        n = int(b["decoder_attention_mask"][i].sum())
        dec, lab = b["decoder_input_ids"][i, :n].tolist(), b["labels"][i, :n].tolist()
        assert dec[0] == 1 and lab[-1] == 2 and dec[1:] == lab[:-1]
        src = b["input_ids"][i, : int(b["attention_mask"][i].sum())].tolist()
        assert uncorrupt(src, lab[:-1]) == w[i].tolist()
    with pytest.raises(ValueError, match="extra_ids"):
        span_corruption_batch(torch.arange(200)[None], torch.Generator(), first_sentinel=S, extra_ids=2, bos_id=1,
                              eos_id=2, pad_id=0)
    with pytest.raises(ValueError, match="noise_density"):
        noise_spans(10, 1.5, 3.0, torch.Generator())


def _cfg(tmp_path, task, shape="encoder_decoder"):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Thank you for inviting me to your party last week. " * 80, encoding="utf-8")
    model = {"preset": "transformer-tiny", "d_model": 32, "n_layers": 1, "max_seq_len": 32, "shape": shape}
    return run_config_from_dict({"model": model, "task": {"name": "span_corruption", "corpus": str(corpus),
                                                          "tokenizer": "bpe", "bpe_vocab": 300, "block_size": 24,
                                                          **task},
                                 "train": {"steps": 2, "batch_size": 4, "eval_batches": 1, "threads": 1,
                                           "plot": False}})


def test_task_trains_an_encoder_decoder_and_adds_sentinels(tmp_path):
    cfg = _cfg(tmp_path, {"extra_ids": 20})
    task = build_task(cfg)
    assert task.vocab_size == task.tokenizer.vocab_size + 20
    b = task.train_batch(3)
    assert int(b["input_ids"].max()) >= task.tokenizer.vocab_size  # sentinels in the source
    res = train(cfg, tmp_path / "out", progress=False)
    assert res["val_loss"] > 0


def test_task_refuses_other_shapes_and_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="encoder_decoder"):
        build_task(_cfg(tmp_path, {}, shape="decoder"))
    with pytest.raises(ConfigError, match="noise_density"):
        build_task(_cfg(tmp_path, {"noise_density": 0.0}))
    with pytest.raises(ConfigError, match="extra_ids"):
        build_task(_cfg(tmp_path, {"extra_ids": 1}))


def test_seq2seq_extra_ids_keep_the_pretrained_vocabulary():
    base = {"model": {"preset": "transformer-tiny", "d_model": 32, "n_layers": 1, "max_seq_len": 32},
            "train": {"steps": 1, "batch_size": 2, "threads": 1}}
    task = {"name": "seq2seq", "tokenizer": "bpe", "bpe_vocab": 300, "max_train_pairs": 50, "max_len": 16}
    plain = build_task(run_config_from_dict({**base, "task": task}))
    extra = build_task(run_config_from_dict({**base, "task": {**task, "extra_ids": 100}}))
    assert extra.vocab_size == plain.vocab_size + 100 == extra.tokenizer.vocab_size + 100
    assert extra.model_overrides()["vocab_size"] == extra.vocab_size
