"""A tiny self-contained LM task for trainer tests (no corpus or tokenizer needed)."""
from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from archlab import registry
from archlab.tasks import Task

VOCAB = 16


class ToyLM(Task):
    """Next-token prediction on a fixed noisy cyclic sequence; batches are pure functions of (seed, step)."""

    vocab_size = VOCAB

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        self.block = int(self.option("block_size", 16))
        g = torch.Generator().manual_seed(1234)
        base = torch.arange(4096) % VOCAB
        noise = torch.randint(0, VOCAB, (4096,), generator=g)
        keep = torch.rand(4096, generator=g) < 0.8
        self.data = torch.where(keep, base, noise)

    def _batch(self, step: int, split_offset: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 2 + split_offset)
        starts = torch.randint(0, len(self.data) - self.block - 1, (self.batch_size,), generator=g)
        x = torch.stack([self.data[s:s + self.block + 1] for s in starts.tolist()])
        return {"input_ids": x[:, :-1].clone(), "labels": x[:, 1:].clone()}

    def train_batch(self, step: int) -> dict:
        if os.environ.get("TOY_TASK_SLEEP"):  # lets a test kill a training subprocess mid-run
            if step >= int(os.environ.get("TOY_TASK_SLEEP_FROM", "0")):  # batch index: 0 = step 1
                time.sleep(float(os.environ["TOY_TASK_SLEEP"]))
        return self._batch(step, 0)

    def eval_batches(self, split: str):
        return [self._batch(10_000 + i, 1) for i in range(2)]

    def loss(self, model, batch):
        logits = model(batch["input_ids"])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["labels"].reshape(-1))
        return loss, {"n_tokens": batch["labels"].numel()}


if "toy_lm" not in registry._REGISTRY.get("task", {}):
    registry.register("task", "toy_lm")(ToyLM)


def toy_config(**train):
    """A RunConfig for a 2-layer LLaMA-style model on ToyLM."""
    from archlab.train import run_config_from_dict

    t = {"steps": 8, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "eval_every": 4, "log_every": 1,
         "checkpoint_every": 4, "plot": False, "threads": 1, **train}
    return run_config_from_dict({"model": {"preset": "llama-tiny", "d_model": 32, "max_seq_len": 32,
                                           "block.dropout": 0.1},
                                 "task": {"name": "toy_lm"}, "train": t})
