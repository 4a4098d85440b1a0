"""Training tasks: a task turns a run config into batches, a loss and an evaluation.

A task is registered with `archlab.registry.register("task", NAME)` as a builder `(run_cfg) -> task`.
The task object provides:

    vocab_size            int or None (the model's vocab_size is set from it)
    tokenizer             optional; saved with every checkpoint as tokenizer.json
    train_batch(i)        micro-batch i as a dict of tensors — a pure function of (seed, i), which is what
                          makes resuming bit-exact: the data position is just the step counter
    eval_batches(split)   iterable of batches for "val" / "test"
    loss(model, batch)    (scalar loss, {metric: float})
    evaluate(model, split) {metric: float}; the trainer calls it under no_grad in eval mode
    model_overrides()     optional {dotted.model.key: value} the task must impose (vocab size, classes)
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

import torch

from archlab import registry


class Task:
    """Defaults shared by the text tasks: averaged-loss evaluation over a bounded number of batches."""

    vocab_size: int | None = None
    tokenizer: Any = None

    def __init__(self, run_cfg) -> None:
        self.run_cfg = run_cfg
        self.options = run_cfg.task_options()
        self.seed = run_cfg.train.seed
        self.batch_size = run_cfg.train.batch_size
        self.max_eval_batches = run_cfg.train.eval_batches or 20

    def option(self, key: str, default: Any = None) -> Any:
        """A task option from the run config's task section."""
        return self.options.get(key, default)

    def model_overrides(self) -> dict:
        return {"vocab_size": self.vocab_size} if self.vocab_size else {}

    def train_batch(self, step: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def eval_batches(self, split: str) -> Iterable[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, model, batch: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model, split: str = "val") -> dict:
        """Token-weighted mean loss (and the mean of every other metric) over the split's batches."""
        device = next(model.parameters()).device
        totals: dict[str, float] = {}
        weight = 0.0
        for batch in self.eval_batches(split):
            batch = to_device(batch, device)
            loss, metrics = self.loss(model, batch)
            w = float(metrics.get("n_tokens", metrics.get("tokens", batch_tokens(batch))))
            totals["loss"] = totals.get("loss", 0.0) + float(loss) * w
            for k, v in metrics.items():
                if k not in ("n_tokens", "tokens", "loss"):
                    totals[k] = totals.get(k, 0.0) + float(v) * w
            weight += w
        if not weight:
            return {}
        out = {k: v / weight for k, v in totals.items()}
        if "loss" in out and "ppl" not in out and out["loss"] < 30:
            out["ppl"] = float(torch.tensor(out["loss"]).exp())
        return out


def to_device(batch: dict, device) -> dict:
    """Move every tensor of a batch to device."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def batch_tokens(batch: dict) -> int:
    """Tokens a batch feeds the model (input + decoder input), for throughput figures."""
    n = 0
    for key in ("input_ids", "decoder_input_ids"):
        v = batch.get(key)
        if isinstance(v, torch.Tensor):
            n += v.numel()
    return n


_loaded = False


def load_tasks() -> None:
    """Import every module in archlab.tasks so their register() calls run (a missing dependency is skipped)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except ImportError as e:  # another engineer's module whose dependency is not there yet
            import warnings

            warnings.warn(f"task module archlab.tasks.{info.name} not loaded: {e}", stacklevel=2)


def build_task(run_cfg):
    """The task object named by run_cfg.task['name']."""
    load_tasks()
    return registry.build("task", run_cfg.task_name, run_cfg)


load_tasks()
