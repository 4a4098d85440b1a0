"""Sequence transduction with a choice of decoder inputs: teacher forcing, free running or scheduled sampling.

Run-config task section (every key but `name` optional):

    task: {name: transduction, kind: reversal | addition, length: 8, vocab: 12, digits: 4,
           mode: teacher | free | scheduled, sampling_prob: 0.5, eval_size: 256}

kind: reversal — source [BOS x_1..x_L SEP] (BOS 0, SEP 1, content 2..vocab-1), target x_L..x_1; addition —
source [BOS a + b =] (digits 0-9, '+' 11, '=' 12, BOS 10), target a+b's digits+1 digits least-significant first
(each needs the carry of the one before). mode — the teacher-forcing hook (`decoder_inputs`): teacher feeds the
gold previous target tokens; free feeds the model's own greedy outputs (generated without gradient, the targets
stay gold); scheduled feeds its own output at each position with probability `sampling_prob`.
The model's `shape` poses the same task: decoder (one stream [source target]), encoder_decoder (the source but
its last token to the encoder, [last source token, target…] to the decoder), encoder (bidirectional over
[source MASK…], every target at once; mode must be teacher). Token id `vocab` is the MASK.
Batch i is a pure function of (train.seed, i); "val" / "test" are fixed held-out sets, the same for every seed.
Evaluation: the teacher-forced loss of the gold answers, and exact-match greedy generation (gen_seq_acc,
gen_token_acc).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from archlab.config import ConfigError, check_choice
from archlab.registry import register
from archlab.tasks import Task

OPTIONS = ("kind", "length", "vocab", "digits", "mode", "sampling_prob", "eval_size")
BOS, PLUS, EQ = 10, 11, 12  # addition tokens after the digits 0-9
_SPLIT_SEED = {"val": 999_999, "test": 1_999_999}


def reversal_batch(gen: torch.Generator, batch: int, length: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(source [BOS x SEP], target reverse(x)); content tokens 2..vocab-1."""
    x = torch.randint(2, vocab, (batch, length), generator=gen)
    col = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([col, x, col + 1], 1), x.flip(1)


def addition_batch(gen: torch.Generator, batch: int, digits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(source [BOS a + b =], target a+b's digits+1 digits least-significant first)."""
    a = torch.randint(0, 10, (batch, digits), generator=gen)
    b = torch.randint(0, 10, (batch, digits), generator=gen)
    pw = 10 ** torch.arange(digits - 1, -1, -1)
    s = (a * pw).sum(1) + (b * pw).sum(1)
    out = torch.stack([(s // 10 ** i) % 10 for i in range(digits + 1)], 1)
    col = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([col + BOS, a, col + PLUS, b, col + EQ], 1), out


class TransductionTask(Task):
    """Source → target trained with the decoder inputs `mode` chooses, scored by greedy generation."""

    def __init__(self, run_cfg) -> None:
        super().__init__(run_cfg)
        for k in self.options:
            if k not in OPTIONS:
                raise ConfigError(f"unknown task option 'task.{k}' for transduction; expected {list(OPTIONS)}")
        self.kind, self.mode = str(self.option("kind", "reversal")), str(self.option("mode", "teacher"))
        check_choice("task.kind", self.kind, ("reversal", "addition"))
        check_choice("task.mode", self.mode, ("teacher", "free", "scheduled"))
        self.p_sample = {"teacher": 0.0, "free": 1.0}.get(self.mode, float(self.option("sampling_prob", 0.5)))
        if not 0.0 <= self.p_sample <= 1.0:
            raise ConfigError(f"task.sampling_prob={self.p_sample!r} must be in [0, 1]")
        if self.kind == "addition":
            self.digits = int(self.option("digits", 4))
            self.vocab, self.src_len, self.tgt_len = 13, 2 * self.digits + 3, self.digits + 1
        else:
            self.length, self.vocab = int(self.option("length", 8)), int(self.option("vocab", 12))
            if self.vocab < 3 or self.length < 1:
                raise ConfigError(f"task.vocab={self.vocab} must be ≥ 3 and task.length={self.length} ≥ 1")
            self.src_len, self.tgt_len = self.length + 2, self.length
        self.vocab_size = self.vocab + 1  # + MASK
        self.eval_size = int(self.option("eval_size", 256))
        self.shape = run_cfg.model_config(self.model_overrides()).shape
        if self.shape == "encoder" and self.p_sample > 0:
            raise ConfigError("task.mode must be 'teacher' for an encoder-only model (it does not generate)")
        self._held: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size, "max_seq_len": self.src_len + self.tgt_len}

    def pairs(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "addition":
            return addition_batch(gen, n, self.digits)
        return reversal_batch(gen, n, self.length, self.vocab)

    def train_batch(self, step: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 1000 + step)
        src, tgt = self.pairs(gen, self.batch_size)
        coin = torch.rand(self.batch_size, self.tgt_len - 1, generator=gen)  # scheduled sampling's draws
        return {"input_ids": src, "targets": tgt, "coin": coin}

    def held_out(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in _SPLIT_SEED:
            raise ConfigError(f"split {split!r} unknown (expected 'val' or 'test')")
        if split not in self._held:
            self._held[split] = self.pairs(torch.Generator().manual_seed(_SPLIT_SEED[split]), self.eval_size)
        return self._held[split]

    def eval_batches(self, split: str):
        src, tgt = self.held_out(split)
        return [{"input_ids": src, "targets": tgt}]

    def logits(self, model, src: torch.Tensor, tgt_inputs: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, L, V) at the L target positions, given the target-side inputs (B, ≤ L-1)."""
        if self.shape == "decoder":
            return model(torch.cat([src, tgt_inputs], 1))[:, self.src_len - 1:]
        if self.shape == "encoder_decoder":
            return model(src[:, :-1], decoder_input_ids=torch.cat([src[:, -1:], tgt_inputs], 1))
        masks = torch.full((src.shape[0], self.tgt_len), self.vocab, dtype=torch.long, device=src.device)
        return model(torch.cat([src, masks], 1))[:, self.src_len:]

    @torch.no_grad()
    def greedy(self, model, src: torch.Tensor) -> torch.Tensor:
        """The model's own answer, one token at a time (all at once for an encoder)."""
        if self.shape == "encoder":
            return self.logits(model, src, None).argmax(-1)
        out = src[:, :0]
        for j in range(self.tgt_len):
            out = torch.cat([out, self.logits(model, src, out)[:, j].argmax(-1, keepdim=True)], 1)
        return out

    def decoder_inputs(self, model, batch: dict) -> torch.Tensor | None:
        """The teacher-forcing hook: the target-side inputs of a training step, as `mode` chooses them."""
        if self.shape == "encoder":
            return None
        gold = batch["targets"][:, :-1]
        if self.p_sample == 0:
            return gold
        was_training = model.training
        model.eval()
        try:
            own = self.greedy(model, batch["input_ids"])[:, :-1]
        finally:
            model.train(was_training)
        return torch.where(batch["coin"] < self.p_sample, own, gold)

    def loss(self, model, batch: dict):
        tgt = batch["targets"]
        logits = self.logits(model, batch["input_ids"], self.decoder_inputs(model, batch))
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        return loss, {"n_tokens": tgt.numel()}

    @torch.no_grad()
    def evaluate(self, model, split: str = "val") -> dict:
        """Teacher-forced loss of the gold answers; exact-match greedy generation (whole answers, tokens)."""
        device = next(model.parameters()).device
        src, tgt = (t.to(device) for t in self.held_out(split))
        gold_in = None if self.shape == "encoder" else tgt[:, :-1]
        lg = self.logits(model, src, gold_in)
        out = self.greedy(model, src)
        return {"loss": float(F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), tgt.reshape(-1))),
                "gen_seq_acc": float((out == tgt).all(1).float().mean()),
                "gen_token_acc": float((out == tgt).float().mean())}


register("task", "transduction")(TransductionTask)
