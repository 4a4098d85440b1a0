"""Shared pieces of the text tasks: corpus and tokenizer options, split names, option checking."""
from __future__ import annotations

from pathlib import Path

from archlab.config import ConfigError

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
    from archlab.data.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

    spec = spec or "char"
    if spec == "char":
        text = texts if isinstance(texts, str) else "".join(texts)
        return CharTokenizer.from_text(text, byte_fallback=byte_fallback)
    if spec == "bpe":
        return BPETokenizer.train(texts, int(bpe_vocab))
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
