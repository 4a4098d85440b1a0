"""Causal language modelling on a text corpus (Shakespeare by default), next-token teacher forcing.

Run-config task section (all optional but name):

    task: {name: causal_lm, corpus: shakespeare | PATH, tokenizer: char | bpe | PATH/tokenizer.json,
           bpe_vocab: 2048, block_size: <model max_seq_len>, val_fraction: 0.1, cache_dir: null}

Training windows are random (B, T) slices of the first 90% of the token stream, a pure function of
(seed, step); validation uses evenly spaced windows of the last 10%.
"""
from __future__ import annotations

from archlab.data.corpora import load_corpus
from archlab.data.lm_data import LMBatches, eval_batches, token_ids_cached, train_val_split
from archlab.objectives import causal_lm_loss
from archlab.registry import register
from archlab.tasks import Task
from archlab.tasks._text import block_size, check_options, make_tokenizer

OPTIONS = ("corpus", "tokenizer", "bpe_vocab", "block_size", "val_fraction", "cache_dir", "byte_fallback")


class CausalLMTask(Task):
    """Predict token t+1 from tokens ≤ t (objectives.causal_lm_loss)."""

    objective = "causal_lm"

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        check_options(self.objective, self.options, OPTIONS)
        text = load_corpus(self.option("corpus", "shakespeare"))
        # nanoGPT's char vocabulary: the corpus's characters only (no byte fallback) unless asked
        self.tokenizer = make_tokenizer(self.option("tokenizer", "char"), text,
                                        bpe_vocab=self.option("bpe_vocab", 2048),
                                        byte_fallback=bool(self.option("byte_fallback", False)))
        self.vocab_size = self.tokenizer.vocab_size
        self.block_size = block_size(self, run_cfg)
        ids = token_ids_cached(text, self.tokenizer, self.option("cache_dir"))
        self.train_ids, self.val_ids = train_val_split(ids, float(self.option("val_fraction", 0.1)))
        self.batches = LMBatches(self.train_ids, self.block_size, self.batch_size, self.seed)
        self._eval: dict[str, list] = {}

    def train_batch(self, step: int) -> dict:
        return self.batches.get(step)

    def eval_batches(self, split: str):
        ids = self.train_ids if split == "train" else self.val_ids
        if split not in self._eval:
            self._eval[split] = eval_batches(ids, self.block_size, self.batch_size, self.max_eval_batches)
        return self._eval[split]

    def loss(self, model, batch):
        return causal_lm_loss(model, batch)


register("task", "causal_lm")(CausalLMTask)
