"""T5 span-corruption pretraining of an encoder-decoder on text (archlab.objectives.span_corruption).

    task: {name: span_corruption, corpus: shakespeare | verses | shakespeare+verses | PATH, tokenizer: bpe | PATH,
           bpe_vocab: 6000, block_size: 64, noise_density: 0.15, mean_span: 3, extra_ids: 100, val_fraction: 0.1}

`verses` is the English and Spanish text of the shipped Bible pairs' *training* split (never the validation or
test verses the translation task is scored on). The model's vocabulary is the tokenizer's plus `extra_ids`
sentinels. To fine-tune the pretrained model for translation, give the seq2seq task the same tokenizer and
sentinel count: `task.tokenizer=RUN/tokenizer.json task.extra_ids=100 train.init_from=RUN`.
"""
from __future__ import annotations

import torch

from archlab.config import ConfigError
from archlab.data.corpora import bible_pairs, load_corpus, shakespeare_text
from archlab.objectives import seq2seq_loss
from archlab.objectives.span_corruption import span_corruption_batch
from archlab.registry import register
from archlab.tasks import Task
from archlab.tasks._text import WindowBatchTask, block_size, check_options, make_tokenizer

OPTIONS = ("corpus", "tokenizer", "bpe_vocab", "block_size", "noise_density", "mean_span", "extra_ids",
           "val_fraction", "cache_dir")


def pretraining_text(corpus: str) -> str:
    """The text of a span-corruption corpus name (or a path)."""
    def verses() -> str:
        return "\n".join(t for pair in bible_pairs("train") for t in pair)

    if corpus == "verses":
        return verses()
    if corpus == "shakespeare+verses":
        return shakespeare_text() + "\n" + verses()
    return load_corpus(corpus)


class SpanCorruptionTask(WindowBatchTask, Task):
    """Reconstruct the cut-out spans, sentinel by sentinel (objectives.seq2seq_loss on corrupted windows)."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        check_options("span_corruption", self.options, OPTIONS)
        if run_cfg.model_config().shape != "encoder_decoder":
            raise ConfigError("task span_corruption pretrains an encoder-decoder; set model.shape=encoder_decoder "
                              f"(got {run_cfg.model_config().shape!r})")
        text = pretraining_text(str(self.option("corpus", "shakespeare+verses")))
        self.tokenizer = make_tokenizer(self.option("tokenizer", "bpe"), text, bpe_vocab=self.option("bpe_vocab", 6000))
        self.extra_ids = int(self.option("extra_ids", 100))
        if self.extra_ids < 2:
            raise ConfigError(f"task.extra_ids={self.extra_ids} must be >= 2 (one sentinel per span plus the last)")
        self.vocab_size = self.tokenizer.vocab_size + self.extra_ids
        self.block_size = block_size(self, run_cfg)
        self.noise_density = float(self.option("noise_density", 0.15))
        self.mean_span = float(self.option("mean_span", 3.0))
        self.setup_windows(text)
        self.make_batch(self.batches.get(0), 0)  # bad noise_density / mean_span / extra_ids fail now, not at step 1

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size, "pad_token_id": self.tokenizer.pad_id}

    def make_batch(self, window: dict, key: int) -> dict:
        tok = self.tokenizer
        try:
            return span_corruption_batch(window["input_ids"], torch.Generator().manual_seed(key),
                                         first_sentinel=tok.vocab_size, extra_ids=self.extra_ids, bos_id=tok.bos_id,
                                         eos_id=tok.eos_id, pad_id=tok.pad_id, noise_density=self.noise_density,
                                         mean_span=self.mean_span)
        except ValueError as e:
            raise ConfigError(f"task span_corruption: {e}") from None

    def loss(self, model, batch):
        return seq2seq_loss(model, batch)


register("task", "span_corruption")(SpanCorruptionTask)
