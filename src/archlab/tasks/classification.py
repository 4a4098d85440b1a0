"""Sequence classification of the shipped text. Fine-tunes an encoder's pooled [CLS] output on one of:

* `dataset: genre` (default) — which kind of Shakespeare play (comedy / history / tragedy) a ~128-character
  passage comes from;
* `dataset: acceptability` — whether a passage is as written or corrupted by a word swap, a reversed span or
  a replaced word (seed 004's acceptability judgement; archlab.data.acceptability).

    task: {name: classification, dataset: genre | acceptability, tokenizer: bpe | char | PATH/tokenizer.json,
           bpe_vocab: 2048, max_len: 64, passage_chars: 128, max_eval: 0}

To fine-tune a pretrained encoder, point `tokenizer` at the pretraining run's tokenizer.json and set
`train.init_from` to its checkpoint.
"""
from __future__ import annotations

import numpy as np
import torch

from archlab.config import check_choice
from archlab.data.acceptability import acceptability_classification
from archlab.data.corpora import shakespeare_text, source_classification
from archlab.objectives import classification_batch, classification_loss
from archlab.registry import register
from archlab.tasks import Task, to_device
from archlab.tasks._text import check_options, make_tokenizer, split_name

OPTIONS = ("dataset", "tokenizer", "bpe_vocab", "max_len", "passage_chars", "max_eval")
DATASETS = ("genre", "acceptability")


class ClassificationTask(Task):
    """Cross-entropy on model.classify (objectives.classification_loss); accuracy in evaluation."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        check_options("classification", self.options, OPTIONS)
        dataset = self.option("dataset", "genre")
        check_choice("task.dataset", dataset, DATASETS)
        load = acceptability_classification if dataset == "acceptability" else source_classification
        pc = int(self.option("passage_chars", 128))
        self.data = {}
        for s in ("train", "validation", "test"):
            self.data[s], self.label_names = load(s, passage_chars=pc)
        spec = self.option("tokenizer", "bpe")
        self.tokenizer = make_tokenizer(spec, shakespeare_text() if spec in ("bpe", "char") else None,
                                        bpe_vocab=self.option("bpe_vocab", 2048))
        self.vocab_size = self.tokenizer.vocab_size
        self.max_len = min(int(self.option("max_len", 64)), run_cfg.model_config().max_seq_len)
        self.max_eval = int(self.option("max_eval", 0) or 0)
        self._eval: dict[str, list] = {}

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size, "head.pooler": True, "head.n_classes": len(self.label_names),
                "pad_token_id": self.tokenizer.pad_id}

    def _batch(self, examples) -> dict:
        return classification_batch(examples, self.tokenizer, self.max_len)

    def train_batch(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, int(step)])
        data = self.data["train"]
        return self._batch([data[i] for i in rng.integers(0, len(data), size=self.batch_size)])

    def eval_batches(self, split: str):
        s = split_name(split)
        if s not in self._eval:
            data = self.data[s][: self.max_eval] if self.max_eval else self.data[s]
            bs = max(self.batch_size, 64)
            self._eval[s] = [self._batch(data[i:i + bs]) for i in range(0, len(data), bs)]
        return self._eval[s]

    def loss(self, model, batch):
        return classification_loss(model, batch)

    @torch.no_grad()
    def evaluate(self, model, split: str = "val") -> dict:
        """Example-weighted loss and accuracy over the whole split (or its first max_eval passages)."""
        device = next(model.parameters()).device
        n, loss_sum, correct = 0, 0.0, 0.0
        for batch in self.eval_batches(split):
            batch = to_device(batch, device)
            loss, m = self.loss(model, batch)
            b = batch["labels"].shape[0]
            n += b
            loss_sum += float(loss) * b
            correct += m["accuracy"] * b
        return {"loss": loss_sum / n, "accuracy": correct / n} if n else {}


register("task", "classification")(ClassificationTask)
