"""Prefix language modelling: a prefix is read bidirectionally, the rest predicted causally.

    task: {name: prefix_lm, corpus: shakespeare | PATH, tokenizer: char | bpe | PATH, block_size, min_prefix: 1,
           prefix: random | half}

`prefix: random` (default) draws the prefix length per row from [min_prefix, T−1]; `prefix: half` fixes it
at the first half of every window, T // 2 (seed 004: "the first half of the sequence is immediately
available").

The model is built with attn.causal=false (the objective's mask supplies causality after the prefix).
"""
from __future__ import annotations

import torch

from archlab.config import check_choice
from archlab.objectives import prefix_lm_batch, prefix_lm_loss, random_prefix_lm_batch
from archlab.registry import register
from archlab.tasks.causal_lm import CausalLMTask

OPTIONS = ("corpus", "tokenizer", "bpe_vocab", "block_size", "val_fraction", "cache_dir", "byte_fallback",
           "min_prefix", "prefix")
PREFIX_MODES = ("random", "half")


class PrefixLMTask(CausalLMTask):
    """UniLM / T5 prefix LM on a text corpus (objectives.prefix_lm_loss)."""

    objective = "prefix_lm"

    def __init__(self, run_cfg) -> None:
        opts = run_cfg.task_options()
        self.min_prefix = int(opts.get("min_prefix", 1))
        self.prefix_mode = opts.get("prefix", "random")
        check_choice("task.prefix", self.prefix_mode, PREFIX_MODES)
        own = ("min_prefix", "prefix")
        run_cfg = type(run_cfg)(model=run_cfg.model, task={k: v for k, v in run_cfg.task.items() if k not in own},
                                train=run_cfg.train, name=run_cfg.name)
        super().__init__(run_cfg)

    def model_overrides(self) -> dict:
        return {**super().model_overrides(), "attn.causal": False}

    def _prefix(self, window: dict, key: int) -> dict:
        ids = torch.cat([window["input_ids"], window["labels"][:, -1:]], dim=1)[:, :self.block_size]
        if self.prefix_mode == "half":
            return prefix_lm_batch(ids, ids.shape[1] // 2)
        return random_prefix_lm_batch(ids, torch.Generator().manual_seed(key), self.min_prefix)

    def train_batch(self, step: int) -> dict:
        return self._prefix(self.batches.get(step), self.seed * 1_000_003 + step)

    def eval_batches(self, split: str):
        if split not in self._eval:
            self._eval[split] = [self._prefix(w, 10_007 + i) for i, w in enumerate(super().eval_batches(split))]
        return self._eval[split]

    def loss(self, model, batch):
        return prefix_lm_loss(model, batch)


register("task", "prefix_lm")(PrefixLMTask)
