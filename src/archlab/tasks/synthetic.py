"""Synthetic recall tasks as a trainable task (archlab.data.synthetic).

Run-config task section (every key but `name` optional):

    task: {name: synthetic, kind: mqar, seq_len: 64, vocab_size: 256, n_pairs: 8, eval_size: 512}

kind: copy | selective_copy | mqar | associative_recall | induction_heads | program_log | kth_order. Options
`n_pairs` (mqar, associative_recall), `n_tokens` (selective_copy) and `k`, `order_sensitive`, `n_values`,
`offsets` (kth_order) pass through to the generator.
Batch i is generated from seed (train.seed, i), so training is a pure function of the step;
"val" / "test" are fixed sets drawn from other seeds. Loss is cross-entropy on the determined
positions only (targets ≠ −100) — the answers — and `acc` is the accuracy there.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from archlab.config import ConfigError, check_choice
from archlab.data.synthetic import GENERATORS, IGNORE, generate, masked_accuracy
from archlab.registry import register
from archlab.tasks import Task

GEN_OPTIONS = {"mqar": ("n_pairs",), "associative_recall": ("n_pairs",), "selective_copy": ("n_tokens",),
               "kth_order": ("k", "order_sensitive", "n_values", "offsets")}
GEN_KEYS = tuple(sorted({o for opts in GEN_OPTIONS.values() for o in opts}))
OPTIONS = ("kind", "seq_len", "vocab_size", "eval_size", "eval_batch_size", *GEN_KEYS)
_SPLIT_SEED = {"val": 1_000_003, "test": 2_000_003}


def _gen_option(key: str, value):
    """A generator option from the run config, typed: order_sensitive a bool, offsets a tuple, others ints."""
    if key == "order_sensitive":
        if not isinstance(value, bool):
            raise ConfigError(f"task.order_sensitive={value!r} must be true or false")
        return value
    try:
        if key == "offsets":
            return tuple(int(o) for o in value)
        if isinstance(value, bool):
            raise TypeError
        return int(value)
    except (TypeError, ValueError):
        what = "a list of integers" if key == "offsets" else "an integer"
        raise ConfigError(f"task.{key}={value!r} must be {what}") from None


class SyntheticTask(Task):
    """Next-token prediction on a synthetic generator, scored only where the answer is determined."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        for k in self.options:
            if k not in OPTIONS:
                raise ConfigError(f"unknown task option 'task.{k}' for synthetic; expected {list(OPTIONS)}")
        self.kind = self.option("kind", "mqar")
        check_choice("task.kind", self.kind, sorted(GENERATORS))
        self.seq_len = int(self.option("seq_len", 64))
        self.vocab_size = int(self.option("vocab_size", 256))
        self.gen_options = {k: _gen_option(k, self.options[k]) for k in GEN_OPTIONS.get(self.kind, ())
                            if k in self.options}
        for k in GEN_KEYS:
            if k in self.options and k not in GEN_OPTIONS.get(self.kind, ()):
                raise ConfigError(f"task.{k} does not apply to task.kind={self.kind!r}")
        self.eval_size = int(self.option("eval_size", 512))
        self.eval_batch_size = int(self.option("eval_batch_size", 256))
        try:  # fail at config time, not at step 1, for impossible sizes
            generate(self.kind, 1, self.seq_len, self.vocab_size, generator=0, **self.gen_options)
        except ValueError as e:
            raise ConfigError(f"task: {e}") from None
        self._eval_cache: dict[str, dict] = {}

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size, "max_seq_len": self.seq_len}

    def batch(self, n: int, seed: int) -> dict:
        return generate(self.kind, n, self.seq_len, self.vocab_size, generator=seed, **self.gen_options)

    def train_batch(self, step: int) -> dict:
        return self.batch(self.batch_size, self.seed * 1_000_000_007 + step)

    def eval_batches(self, split: str) -> Iterable[dict]:
        if split not in _SPLIT_SEED:
            raise ConfigError(f"split {split!r} unknown (expected 'val' or 'test')")
        if split not in self._eval_cache:
            self._eval_cache[split] = self.batch(self.eval_size, _SPLIT_SEED[split] + self.seed)
        full = self._eval_cache[split]
        for i in range(0, self.eval_size, self.eval_batch_size):
            yield {k: v[i:i + self.eval_batch_size] for k, v in full.items()}

    def loss(self, model, batch: dict):
        logits = model(batch["input_ids"])
        tgt = batch["targets"]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE)
        n = int((tgt != IGNORE).sum())
        return loss, {"acc": float(masked_accuracy(logits, tgt)), "n_tokens": n}

    @torch.no_grad()
    def evaluate(self, model, split: str = "val") -> dict:
        """Answer-weighted loss and accuracy over the fixed split."""
        device = next(model.parameters()).device
        tot_loss = tot_acc = tot_n = 0.0
        for b in self.eval_batches(split):
            b = {k: v.to(device) for k, v in b.items()}
            loss, m = self.loss(model, b)
            tot_loss += float(loss) * m["n_tokens"]
            tot_acc += m["acc"] * m["n_tokens"]
            tot_n += m["n_tokens"]
        return {"loss": tot_loss / tot_n, "acc": tot_acc / tot_n} if tot_n else {}


@register("task", "synthetic")
def build_synthetic_task(run_cfg) -> SyntheticTask:
    return SyntheticTask(run_cfg)
