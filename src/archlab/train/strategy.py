"""How the one training loop (archlab.train.trainer) runs: in one process, or as one rank of a DDP / FSDP2 job.

A strategy wraps the model, shards each global micro-batch, averages a step's numbers over the ranks, saves
and finds checkpoints, and says whether this process is the main one (the one that locks the run folder and
writes metrics.jsonl, run.yaml, model.yaml and final_metrics.json). Everything else — schedule, accumulation,
clipping, evaluation, the metrics records, checkpoint cadence, resume seeding, Ctrl-C — is the trainer's, the
same for every strategy. The torch.distributed specifics live in archlab.train.distributed.
"""
from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlab.config import ConfigError
from archlab.train import checkpoint as ckpt_mod


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit device that is missing is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device='mps' but MPS is not available")
    return torch.device(name)


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


class DataParallel(SingleProcess):
    """One rank of a DDP or FSDP2 job (archlab.train.distributed): the same loop on 1/W of every global batch.

    Checkpoints are DCP shards under OUT/dcp/step_N (any world size or strategy can resume them); rank 0 holds
    the run folder's lock and writes the run's files; evaluation runs on every rank (FSDP2 needs every rank in
    each forward) and gives the same numbers everywhere.
    """

    def __init__(self, kind: str, info) -> None:
        from archlab.train.distributed import STRATEGIES

        super().__init__()
        if kind not in STRATEGIES or kind == "none":
            raise ValueError(f"strategy {kind!r} unknown; expected 'ddp' or 'fsdp'")
        self.name, self.info = kind, info
        self.is_main, self.world_size = info.is_main, info.world_size
        self.model: nn.Module | None = None  # the wrapped model, after wrap()

    def device(self, tc) -> torch.device:
        return self.info.device

    def wrap(self, model: nn.Module, tc) -> nn.Module:
        from archlab.train.distributed import wrap_model

        dev = self.info.device
        bf16 = tc.precision == "bf16" or (tc.precision == "auto" and dev.type == "cuda")
        self.model = wrap_model(model, self.name, self.info, bf16_params=bf16 and dev.type == "cuda")
        return self.model

    def shard(self, batch: dict) -> dict:
        from archlab.train.distributed import shard_batch

        return shard_batch(batch, self.info)

    def accumulating(self, fwd: nn.Module, last: bool):
        from archlab.train.distributed import no_grad_sync

        return contextlib.nullcontext() if last else no_grad_sync(self.model, self.name)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        from archlab.train.distributed import all_reduce

        keys = list(values)  # the same order on every rank
        sums = all_reduce([values[k] for k in keys], self.info, "sum")
        return {k: s / self.world_size for k, s in zip(keys, sums)}

    def any(self, flag: bool) -> bool:
        from archlab.train.distributed import all_reduce

        return bool(all_reduce([float(flag)], self.info, "max")[0])

    def on_main(self, fn: Callable[[], Any]) -> None:
        from archlab.train.distributed import all_reduce

        failed: BaseException | None = None
        if self.is_main:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the other ranks have heard
                failed = e
        if all_reduce([float(failed is not None)], self.info, "max")[0]:
            if failed is not None:
                raise failed
            raise RuntimeError("the main process (rank 0) could not prepare the run folder; see its error")

    def checkpoint_dir(self, out: Path) -> Path:
        return out / "dcp"

    def has_checkpoint(self, out: Path) -> bool:
        return any(self.checkpoint_dir(out).glob("step_*"))

    def find_checkpoint(self, out: Path) -> tuple[Path, dict, list]:
        from archlab.train.distributed import latest_distributed

        found = latest_distributed(self.checkpoint_dir(out))
        if found is None:
            raise FileNotFoundError(f"nothing to resume: no complete checkpoint under {str(self.checkpoint_dir(out))!r}"
                                    )
        return found, json.loads((found / "state.json").read_text()), []

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer, device, doc: dict) -> dict:
        from archlab.train.distributed import load_distributed

        return load_distributed(path, self.model, optimizer)

    def save_checkpoint(self, out: Path, step: int, model: nn.Module, optimizer, state: dict, tokenizer,
                        keep: int) -> Path:
        from archlab.train.distributed import save_distributed

        return save_distributed(self.checkpoint_dir(out), step, self.model, optimizer, self.info,
                                {**state, "strategy": self.name}, keep=keep)

    def can_report(self) -> bool:
        return self.name == "ddp" or self.world_size == 1  # an FSDP2 forward needs every rank

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.name, "world_size": self.world_size}
