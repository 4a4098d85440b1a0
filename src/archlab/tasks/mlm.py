"""Masked language modelling (BERT, 15% with 80/10/10) on a text corpus, for encoder pretraining.

    task: {name: mlm, corpus: shakespeare | PATH, tokenizer: bpe | char | PATH, bpe_vocab: 2048,
           block_size: <model max_seq_len>, val_fraction: 0.1, mask_prob: 0.15}

Windows come from LMBatches (pure function of seed, step); the masking of batch i uses a generator
seeded by (seed, i), so a resumed run masks exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch

from archlab.data.corpora import load_corpus
from archlab.objectives import mlm_batch, mlm_loss
from archlab.registry import register
from archlab.tasks import Task
from archlab.tasks._text import WindowBatchTask, block_size, check_options, make_tokenizer

OPTIONS = ("corpus", "tokenizer", "bpe_vocab", "block_size", "val_fraction", "cache_dir", "mask_prob")


class MLMTask(WindowBatchTask, Task):
    """Predict masked tokens from both sides (objectives.mlm_loss)."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        check_options("mlm", self.options, OPTIONS)
        text = load_corpus(self.option("corpus", "shakespeare"))
        self.tokenizer = make_tokenizer(self.option("tokenizer", "bpe"), text, bpe_vocab=self.option("bpe_vocab", 2048))
        self.vocab_size = self.tokenizer.vocab_size
        self.block_size = block_size(self, run_cfg)
        self.p = float(self.option("mask_prob", 0.15))
        self.setup_windows(text)

    def make_batch(self, window: dict, key: int) -> dict:
        g = torch.Generator().manual_seed(key)
        return mlm_batch(window["input_ids"], self.tokenizer, g, self.p)

    def loss(self, model, batch):
        return mlm_loss(model, batch)


register("task", "mlm")(MLMTask)
