"""Shared pieces of the text tasks: corpus and tokenizer options, split names, option checking."""
from __future__ import annotations

from pathlib import Path

from archlab.config import ConfigError
from archlab.data.lm_data import LMBatches, eval_batches, token_ids_cached, train_val_split
from archlab.data.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

_BUILT: dict[tuple, object] = {}  # (spec, bpe_vocab, byte_fallback, len, hash of the text) -> tokenizer
SPLIT_NAMES = {"val": "validation", "validation": "validation", "test": "test", "train": "train"}


def check_options(task: str, options: dict, allowed: tuple[str, ...]) -> None:
    """Unknown task option -> ConfigError naming it and the allowed ones."""
    for k in options:
        if k not in allowed:
            raise ConfigError(f"unknown task option 'task.{k}' for {task}; expected one of {list(allowed)}")


def split_name(split: str) -> str:
    """'val' -> 'validation' (the corpora's name); unknown split -> ConfigError."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split {split!r} is not one of {sorted(SPLIT_NAMES)}")
    return SPLIT_NAMES[split]


def make_tokenizer(spec, texts, *, bpe_vocab: int = 2048, byte_fallback: bool = True):
    """'char' (from texts), 'bpe' (byte-level BPE trained on texts, bpe_vocab ids) or a tokenizer.json path."""
    spec = spec or "char"
    if spec in ("char", "bpe"):
        # built once per process for the same text (a pool worker runs many runs on one corpus); a str's hash is
        # computed once and kept by the string object, so the key costs nothing after the first run
        key = (spec, int(bpe_vocab), bool(byte_fallback), len(texts), hash(texts)) if isinstance(texts, str) else None
        if key is None or key not in _BUILT:
            if spec == "char":
                text = texts if isinstance(texts, str) else "".join(texts)
                tok = CharTokenizer.from_text(text, byte_fallback=byte_fallback)
            else:
                tok = BPETokenizer.train(texts, int(bpe_vocab))
            if key is None:
                return tok
            if len(_BUILT) >= 4:
                _BUILT.pop(next(iter(_BUILT)))
            _BUILT[key] = tok
        return _BUILT[key]
    p = Path(str(spec))
    if not p.exists():
        raise ConfigError(f"task.tokenizer={spec!r}: expected 'char', 'bpe' or an existing tokenizer.json path")
    return load_tokenizer(p)


def block_size(task, run_cfg) -> int:
    """task.block_size, default the model's context length; never longer than the context."""
    ctx = run_cfg.model_config().max_seq_len
    bs = int(task.option("block_size", ctx) or ctx)
    if bs > ctx:
        raise ConfigError(f"task.block_size={bs} exceeds the model's max_seq_len={ctx}")
    return bs


class WindowBatchTask:
    """Mixin for tasks whose batches are windows of a token stream turned into examples by
    `make_batch(window, key)` (masking, span corruption): training batch i uses key (seed, i) and evaluation
    fixed keys, so a resumed run sees exactly the batches of an uninterrupted one."""

    def setup_windows(self, text: str) -> None:
        """Tokenize `text` (cached), split it 90/10 (task.val_fraction) and prepare the training windows."""
        ids = token_ids_cached(text, self.tokenizer, self.option("cache_dir"))
        self.train_ids, self.val_ids = train_val_split(ids, float(self.option("val_fraction", 0.1)))
        self.batches = LMBatches(self.train_ids, self.block_size, self.batch_size, self.seed)
        self._eval: dict[str, list] = {}

    def make_batch(self, window: dict, key: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_batch(self, step: int) -> dict:
        return self.make_batch(self.batches.get(step), self.seed * 1_000_003 + step)

    def eval_batches(self, split: str):
        if split not in self._eval:
            ids = self.train_ids if split == "train" else self.val_ids
            wins = eval_batches(ids, self.block_size, self.batch_size, self.max_eval_batches)
            self._eval[split] = [self.make_batch(w, 10_007 + i) for i, w in enumerate(wins)]
        return self._eval[split]
