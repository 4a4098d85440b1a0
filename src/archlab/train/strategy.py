"""How the one training loop (archlab.train.trainer) runs: in one process, or as one rank of a DDP / FSDP2 job.

A strategy wraps the model, shards each global micro-batch, averages a step's numbers over the ranks, saves
and finds checkpoints, and says whether this process is the main one (the one that locks the run folder and
writes metrics.jsonl, run.yaml, model.yaml and final_metrics.json). Everything else — schedule, accumulation,
clipping, evaluation, the metrics records, checkpoint cadence, resume seeding, Ctrl-C — is the trainer's, the
same for every strategy. The data-parallel strategy (DataParallel) and the torch.distributed specifics live in
archlab.train.distributed.
"""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlab.train import checkpoint as ckpt_mod
from archlab.train.runtime import pick_device


class SingleProcess:
    """The ordinary strategy: one process, the whole batch, checkpoints in OUT/checkpoints/step_N."""

    name = "single"
    is_main = True
    world_size = 1

    def __init__(self) -> None:
        self.losses: list[float] = []  # every step's (global-batch) training loss, in order

    def device(self, tc) -> torch.device:
        return pick_device(tc.device)

    def wrap(self, model: nn.Module, tc) -> nn.Module:
        """The module the loop calls forward on (DDP wrapper, FSDP2-sharded model, or model itself)."""
        return model

    def shard(self, batch: dict) -> dict:
        """This process's rows of a global micro-batch."""
        return batch

    def accumulating(self, fwd: nn.Module, last: bool):
        """Context for one micro-batch's forward + backward (`last`: the step's last one, when gradients sync)."""
        return contextlib.nullcontext()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the processes."""
        return values

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (a Ctrl-C on any rank stops them all)."""
        return flag

    def on_main(self, fn: Callable[[], Any]) -> None:
        """Run fn on the main process only; every process raises if it failed there."""
        fn()

    def checkpoint_dir(self, out: Path) -> Path:
        return out / "checkpoints"

    def has_checkpoint(self, out: Path) -> bool:
        return bool(ckpt_mod.step_dirs(out))

    def discard_checkpoints(self, out: Path) -> None:
        shutil.rmtree(self.checkpoint_dir(out), ignore_errors=True)

    def find_checkpoint(self, out: Path) -> tuple[Path, dict, list]:
        """(newest usable checkpoint, its state, incomplete ones skipped on the way)."""
        return ckpt_mod.find_checkpoint(out)

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer, device, doc: dict) -> dict:
        return ckpt_mod.load_checkpoint(path, model, optimizer, device=device, state=doc)

    def save_checkpoint(self, out: Path, step: int, model: nn.Module, optimizer, state: dict, tokenizer,
                        keep: int) -> Path:
        return ckpt_mod.save_checkpoint(self.checkpoint_dir(out), step, model, optimizer, state, tokenizer, keep=keep)

    def can_report(self) -> bool:
        """Whether the main process may run the model alone (task figures at the end)."""
        return True

    def describe(self) -> dict[str, Any]:
        """Extra keys for final_metrics.json."""
        return {}
