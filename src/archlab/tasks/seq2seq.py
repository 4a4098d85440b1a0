"""English→Spanish translation (KJV / Reina-Valera 1909 verses) with an encoder-decoder.

    task: {name: seq2seq, tokenizer: bpe | PATH, bpe_vocab: 8000, max_len: 96, corpus: bible,
           max_train_pairs: 0, extra_ids: 0}

`extra_ids` reserves that many ids after the tokenizer's vocabulary (T5's sentinels), so a model pretrained
with the span_corruption task (same tokenizer.json, same extra_ids) fine-tunes with its vocabulary intact.

One joint byte-level BPE vocabulary serves both languages (the model shares its embedding table).
Training batch i samples pairs with a generator seeded by (seed, i); evaluation uses the fixed
validation / test splits. `translate_and_score` decodes with beam search and reports sacreBLEU and chrF.
"""
from __future__ import annotations

import numpy as np
import torch

from archlab.data.corpora import bible_pairs
from archlab.errors import ConfigError
from archlab.generate import beam_search
from archlab.objectives import encode_source, pad_sequences, seq2seq_batch, seq2seq_loss
from archlab.registry import register
from archlab.tasks import Task, to_device
from archlab.tasks._text import check_options, make_tokenizer, split_name

OPTIONS = ("tokenizer", "bpe_vocab", "max_len", "corpus", "max_train_pairs", "reverse", "extra_ids")


class Seq2SeqTask(Task):
    """Teacher-forced translation (objectives.seq2seq_loss); BLEU/chrF with beam search on demand."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        check_options("seq2seq", self.options, OPTIONS)
        if self.option("corpus", "bible") != "bible":
            raise ConfigError(f"task.corpus={self.option('corpus')!r}: the seq2seq task ships only 'bible'")
        self.reverse = bool(self.option("reverse", False))  # Spanish→English
        self.pairs = {s: self._orient(bible_pairs(s)) for s in ("train", "validation", "test")}
        n = int(self.option("max_train_pairs", 0) or 0)
        if n:
            self.pairs["train"] = self.pairs["train"][:n]
        texts = [t for pair in self.pairs["train"] for t in pair]
        self.tokenizer = make_tokenizer(self.option("tokenizer", "bpe"), texts,
                                        bpe_vocab=self.option("bpe_vocab", 8000))
        self.extra_ids = int(self.option("extra_ids", 0) or 0)
        if self.extra_ids < 0:
            raise ConfigError(f"task.extra_ids={self.extra_ids} must be >= 0")
        self.vocab_size = self.tokenizer.vocab_size + self.extra_ids
        ctx = run_cfg.model_config().max_seq_len
        self.max_len = min(int(self.option("max_len", 96)), ctx)
        self._eval: dict[str, list] = {}

    def _orient(self, pairs):
        return [(b, a) for a, b in pairs] if self.reverse else list(pairs)

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size, "pad_token_id": self.tokenizer.pad_id}

    def _batch(self, pairs) -> dict:
        return seq2seq_batch(pairs, self.tokenizer, self.tokenizer, self.max_len)

    def train_batch(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, int(step)])
        data = self.pairs["train"]
        idx = rng.integers(0, len(data), size=self.batch_size)
        return self._batch([data[i] for i in idx])

    def eval_batches(self, split: str):
        s = split_name(split)
        if s not in self._eval:
            data = self.pairs[s][: self.batch_size * self.max_eval_batches]
            self._eval[s] = [self._batch(data[i:i + self.batch_size]) for i in range(0, len(data), self.batch_size)]
        return self._eval[s]

    def loss(self, model, batch):
        return seq2seq_loss(model, batch)

    @torch.no_grad()
    def translate(self, model, sources: list[str], beam_size: int = 4, length_penalty: float = 1.0,
                  max_new_tokens: int | None = None, batch_size: int = 32, progress=None) -> list[str]:
        """Beam-search translations of source sentences (`progress(n)` is told each batch's size when given)."""
        tok, out = self.tokenizer, []
        device = next(model.parameters()).device
        model.eval()
        for i in range(0, len(sources), batch_size):
            chunk = [encode_source(s, tok, self.max_len) or [tok.eos_id] for s in sources[i:i + batch_size]]
            src = pad_sequences(chunk, tok.pad_id)
            mask = pad_sequences([[1] * len(c) for c in chunk], 0)
            src, mask = to_device({"s": src, "m": mask}, device).values()
            hyps = beam_search(model, src, bos_id=tok.bos_id, eos_id=tok.eos_id, beam_size=beam_size,
                               max_new_tokens=max_new_tokens or self.max_len, length_penalty=length_penalty,
                               src_mask=mask)
            out.extend(tok.decode([i for i in h if i < tok.vocab_size]) for h in hyps)  # no sentinels
            if progress is not None:
                progress(len(chunk))
        return out

    def translate_and_score(self, model, split: str = "test", limit: int = 0, **kw) -> dict:
        """sacreBLEU and chrF of beam-search translations of a split (first `limit` pairs if limit > 0)."""
        import sacrebleu

        data = self.pairs[split_name(split)]
        if limit:
            data = data[:limit]
        hyps = self.translate(model, [s for s, _ in data], **kw)
        refs = [t for _, t in data]
        return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
                "n": len(data), "hypotheses": hyps}


register("task", "seq2seq")(Seq2SeqTask)
