"""Language-model data: token ids cached as memory-mapped arrays, and deterministic random-window batches."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from archlab.errors import ConfigError
from archlab.fileio import atomic_write_bytes


def default_cache_dir() -> Path:
    """$ARCHLAB_CACHE/tokens, else ~/.cache/archlab/tokens."""
    root = os.environ.get("ARCHLAB_CACHE") or Path.home() / ".cache" / "archlab"
    return Path(root) / "tokens"


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def token_ids_cached(text: str, tokenizer, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """tokenizer.encode(text) as a read-only memory-mapped uint16/uint32 array, cached on disk.

    The cache file is keyed by sha256(text) and the tokenizer's fingerprint, so a changed corpus or
    tokenizer never reuses stale ids; it is written atomically, so a crash cannot leave a torn cache.
    """
    if not text:
        raise ConfigError("cannot tokenize an empty corpus")
    key = hashlib.sha256()
    key.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    key.update(tokenizer.fingerprint().encode())
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{key.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):  # unreadable cache: rebuild it below
            pass
    ids = tokenizer.encode(text)
    arr = np.asarray(ids, dtype=_dtype_for(tokenizer.vocab_size))
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return np.load(path, mmap_mode="r")


def train_val_split(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """First (1 - val_fraction) of the ids for training, the tail for validation (nanoGPT's 90/10)."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(ids)
    n_val = int(round(n * val_fraction))
    if n_val < 2 or n - n_val < 2:
        raise ConfigError(f"corpus of {n} tokens is too small to split with val_fraction={val_fraction}")
    return ids[: n - n_val], ids[n - n_val:]


class LMBatches:
    """Random (B, T) windows of a token array; batch `step` is a pure function of (seed, step).

    `labels` are already shifted: labels[b, t] = ids[o + t + 1] is the target of input_ids[b, t] = ids[o + t],
    so resuming at any step reproduces the exact batches of an uninterrupted run.
    """

    def __init__(self, ids: np.ndarray, block_size: int, batch_size: int, seed: int = 0) -> None:
        if block_size < 1 or batch_size < 1:
            raise ConfigError(f"block_size and batch_size must be >= 1, got {block_size}, {batch_size}")
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if len(ids) < block_size + 1:
            raise ConfigError(f"the corpus is too small: this split of it has {len(ids)} tokens but block_size="
                              f"{block_size} needs at least {block_size + 1}; use a longer corpus or a smaller "
                              "task.block_size")
        self.ids = ids
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = int(seed)
        self.n_windows = len(ids) - block_size  # start offsets 0 .. len - T - 1

    def _windows(self, offsets: np.ndarray) -> dict[str, torch.Tensor]:
        T = self.block_size
        idx = offsets[:, None] + np.arange(T + 1)[None, :]
        chunk = torch.from_numpy(np.asarray(self.ids[idx], dtype=np.int64))
        return {"input_ids": chunk[:, :-1].contiguous(), "labels": chunk[:, 1:].contiguous()}

    def offsets(self, step: int) -> np.ndarray:
        """Window start offsets of batch `step`."""
        if step < 0:
            raise ConfigError(f"step must be >= 0, got {step}")
        rng = np.random.default_rng([self.seed, int(step)])
        return rng.integers(0, self.n_windows, size=self.batch_size)

    def get(self, step: int) -> dict[str, torch.Tensor]:
        """Batch number `step`: {'input_ids': (B, T) int64, 'labels': (B, T) int64}."""
        return self._windows(self.offsets(step))

    def __iter__(self):
        step = 0
        while True:
            yield self.get(step)
            step += 1

    def eval_batches(self, n: int) -> list[dict[str, torch.Tensor]]:
        """n fixed batches of windows spread evenly over the array (independent of the seed)."""
        return eval_batches(self.ids, self.block_size, self.batch_size, n)


def eval_batches(ids: np.ndarray, block_size: int, batch_size: int, n: int) -> list[dict[str, torch.Tensor]]:
    """n deterministic (B, T) batches whose windows are evenly spaced over `ids` (held-out evaluation)."""
    if n < 1:
        raise ConfigError(f"number of eval batches must be >= 1, got {n}")
    lb = LMBatches(ids, block_size, batch_size)
    offsets = np.linspace(0, lb.n_windows - 1, n * batch_size).round().astype(np.int64)
    return [lb._windows(offsets[i * batch_size:(i + 1) * batch_size]) for i in range(n)]
